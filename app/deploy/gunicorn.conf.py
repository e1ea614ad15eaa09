"""gunicorn settings for messenger-backend: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

Why gevent: a login spends almost all of its time waiting - for mesibo (50-300 ms in production),
an SMS provider, a directory - and very little on the CPU (well under a millisecond). gevent's
worker holds each connection in a greenlet, so a login waiting on the network costs a few
kilobytes, not a thread: 300 logins held by a mesibo that trickles its answer take nothing from
step 1, /healthz or anyone else, and clients that send their headers slowly cannot take every
worker either. Measured against gthread (2 x 32 threads, the earlier default), side by side in
bench/run.py: less CPU per request, the latency-bound case near its ideal, and no stall when
mesibo is slow (docs/PERFORMANCE.md). The drivers cooperate once the standard library is
patched, which this file does before the app is imported: requests, ldap3, pyrad and smtplib
use patched sockets; psycopg 3.1.14 and later wait through gevent by itself; SQLite's calls are
short and never wait on the network. Workers = CPU cores, because CPU work cannot run in
parallel inside one process. GUNICORN_WORKER_CLASS=gthread brings threads back.

Every value named here can be overridden with an environment variable of the same name in upper
case with a GUNICORN_ prefix (GUNICORN_WORKERS=4); any other gunicorn setting with gunicorn's own
GUNICORN_CMD_ARGS.
"""

import multiprocessing
import os
import tempfile


def _env(name, default):
    return os.environ.get(f"GUNICORN_{name.upper()}", default)


def usable_cpus(cgroup="/sys/fs/cgroup"):
    """The CPUs this process may use: those it may run on (a cpuset, taskset), and no more than a
    container's CPU quota (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us), rounded up - not the
    host's count, which in a container limited to 2 CPUs on a 64-core host would start 64 workers."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = multiprocessing.cpu_count()
    for quota_file, period_file in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            with open(os.path.join(cgroup, quota_file)) as handle:
                fields = handle.read().split()
            if period_file:
                with open(os.path.join(cgroup, period_file)) as handle:
                    fields.append(handle.read().strip())
            quota, period = fields[0], fields[1]
        except (OSError, IndexError):
            continue
        if quota not in ("max", "-1") and int(period) > 0:
            return max(1, min(cpus, -(-int(quota) // int(period))))
        break
    return max(1, cpus)


bind = _env("bind", "127.0.0.1:8000")
workers = int(_env("workers", usable_cpus()))
worker_class = _env("worker_class", "gevent")
# connections a worker holds at once (gevent: each a greenlet; gthread: open connections, served by `threads`)
worker_connections = int(_env("worker_connections", 1000))
if worker_class == "gevent":
    # Patch the standard library before anything imports it (preload_app imports the app in the
    # master): sockets, locks and sleeps must be gevent's in every worker forked from it.
    from gevent import monkey

    monkey.patch_all()
threads = int(_env("threads", 32))
# Longer than mesibo.connect_timeout + mesibo.read_timeout (13 s by default) plus the store's
# busy timeout, so a slow login is answered (BADAPP) rather than killed mid-request.
timeout = int(_env("timeout", 30))
graceful_timeout = int(_env("graceful_timeout", 20))
# nginx keeps connections to us open between requests.
keepalive = int(_env("keepalive", 5))
# Build the app once in the master: configuration errors stop start-up before any worker
# forks, start-up messages are logged once, and workers share the imported code's memory.
# Database connections and HTTP sessions are made lazily in each worker, never shared.
preload_app = _env("preload_app", "true").lower() in ("1", "true", "yes")


# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new connections
# over them evenly; on one shared socket the worker that happened to wake first took most of a burst
# (53 and 45 of 64 connections in two of six runs, measured side by side; with its own socket each,
# 30-34 in all six). But when a worker is replaced (max_requests) the connections still waiting in
# its socket's queue are reset - about a hundred per replacement under load - unless the kernel
# hands them to the other workers: sysctl net.ipv4.tcp_migrate_req=1 (Linux 5.14+; README, Deploy).
# So: a socket per worker where the kernel migrates, one shared socket elsewhere. TCP only: on a Unix
# socket each worker would replace the other's.
def migrates_requests(path="/proc/sys/net/ipv4/tcp_migrate_req"):
    try:
        with open(path) as handle:
            return handle.read().strip() == "1"
    except OSError:
        return False


reuse_port = _env(
    "reuse_port", "true" if not bind.startswith(("unix:", "fd://")) and migrates_requests() else "false"
).lower() in ("1", "true", "yes")
# Restart a worker now and then to bound slow memory growth, staggered so they never all restart at once.
max_requests = int(_env("max_requests", 100000))
max_requests_jitter = int(_env("max_requests_jitter", 10000))
accesslog = _env("accesslog", None)  # the service logs one line per request itself
errorlog = _env("errorlog", "-")
loglevel = _env("loglevel", "info")
# Only the address nginx connects from may set X-Forwarded-For for gunicorn itself; the
# service's own trust rule is server.trusted_proxies (see README, "Behind nginx").
forwarded_allow_ips = _env("forwarded_allow_ips", "127.0.0.1")
# gunicorn's control socket (gunicornc): one per instance, so several instances on one machine
# (nodes, tests, the benchmark) never share it; systemd's RuntimeDirectory holds it in production.
control_socket = _env(
    "control_socket",
    os.path.join(
        os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(), f"messenger-backend-{bind.rsplit(':', 1)[-1]}.ctl"
    ),
)


# -- Prometheus metrics across workers (prometheus_client's multiprocess mode) -------------------
# Every worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR; /metrics adds them up.
# The folder must be set before the app is imported and must start empty (old files would be
# counted again), so it is prepared here, in the master, before anything else - once per master:
# gunicorn reads this file again on a reload (SIGHUP), and the counters must survive that (the
# old workers' files stay and keep counting in the sums; only their live gauges are dropped).
_PREPARED, _MADE = "PROMETHEUS_MULTIPROC_PREPARED_BY", "PROMETHEUS_MULTIPROC_DIR_MADE"
if os.environ.get(_PREPARED) == str(os.getpid()):
    pass  # a reload: the folder is ours and already in use
elif not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_MADE] = tempfile.mkdtemp(prefix="messenger-metrics-")

    def _remove_made_folder() -> None:  # also when start-up fails before on_exit could run
        import shutil

        if os.environ.get(_MADE) == os.environ.get("PROMETHEUS_MULTIPROC_DIR") and os.getpid() == _MASTER:
            shutil.rmtree(os.environ[_MADE], ignore_errors=True)

    _MASTER = os.getpid()
    import atexit

    atexit.register(_remove_made_folder)
else:
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    for _name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
        if _name.endswith(".db"):
            os.remove(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], _name))
os.environ[_PREPARED] = str(os.getpid())


# -- JSON logs everywhere (logging.json = true) ---------------------------------------------------
# gunicorn's own lines, its access log (GUNICORN_ACCESSLOG=-) and any library's go through the
# service's JSON formatter too, so every line on stderr is one JSON object (jq works on the stream).
# (After the metrics folder is set: importing the app imports prometheus_client, which decides at
# import whether it is in multiprocess mode.)
def _json_logs() -> bool:
    try:
        from app.config import load

        return load().logging.json
    except Exception:  # a configuration error is reported, in one line, when the app is loaded -
        from app.logs import wants_json  # as JSON too, when the operator asked for JSON logs

        return wants_json(os.environ)


if _json_logs():
    _JSON = {"handlers": ["json"], "propagate": False}
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.logs.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["json"]},
        "loggers": {"gunicorn.error": {"level": "INFO", **_JSON}, "gunicorn.access": {"level": "INFO", **_JSON}},
    }


def pre_fork(server, worker):
    """Move everything the master built into the collector's permanent generation before a worker
    forks from it: a collection in the worker would otherwise write to every object's header and
    copy pages it could share with the master and its siblings (gc.freeze's documented use)."""
    import gc

    gc.freeze()


def child_exit(server, worker):
    """A dead worker's live gauges must not be reported any more."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def when_ready(server):
    """metrics.port: serve /metrics on a port of its own, from the master, for all workers - as the
    app the master has loaded says (no second reading of the configuration). And how the workers
    listen (see reuse_port above)."""
    from app.services import EXTENSION

    if server.cfg.workers > 1 and not server.cfg.reuse_port and not bind.startswith(("unix:", "fd://")):
        server.log.info(
            "the workers share one listening socket: with sysctl net.ipv4.tcp_migrate_req=1 each "
            "gets its own and the kernel spreads connections evenly (README, Deploy)"
        )

    services = getattr(server.app.wsgi(), "extensions", {}).get(EXTENSION)
    if services is None:  # another app under this configuration (the benchmark's floor)
        return
    metrics = services.settings.metrics
    if metrics.enabled and metrics.port:
        from prometheus_client import start_http_server

        from app.metrics import multiprocess_registry

        start_http_server(metrics.port, addr=metrics.bind, registry=multiprocess_registry())
        server.log.info("metrics on http://%s:%s/metrics", metrics.bind, metrics.port)


def on_reload(server):
    """systemctl reload (SIGHUP): build the app anew from the configuration as it is now - limits,
    senders, templates, CORS, logging - for the workers gunicorn is about to start; the old workers
    finish the requests they hold. A configuration that does not load is refused, in the log, and
    the old app keeps serving. (With preload_app off every new worker reads it anyway.)"""
    if not server.cfg.preload_app:
        return
    from app import ConfigError, create_app

    try:
        fresh = create_app()
    except ConfigError as error:
        server.log.error("configuration not reloaded, the old one keeps serving: %s", error)
        return
    except Exception:
        server.log.exception("configuration not reloaded, the old one keeps serving")
        return
    server.app.callable = fresh
    server.log.info("configuration reloaded")


def on_exit(server):
    if os.environ.get(_MADE) == os.environ["PROMETHEUS_MULTIPROC_DIR"]:  # a temporary folder made above
        import shutil

        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
