"""Prometheus metrics, correct under several gunicorn workers.

When ``PROMETHEUS_MULTIPROC_DIR`` is set (the shipped gunicorn configuration sets it), every
worker writes its samples to files in that folder and ``/metrics`` aggregates all of them
(prometheus_client's multiprocess mode). Otherwise (tests, ``flask run``) the metrics live in
a registry of this app alone.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from .errors import CODES
from .limits import REFUSING
from .schema import between, setting

# mesibo answers in 50-300 ms in production; the buckets resolve that range and its slow tail.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0)


logger = logging.getLogger("app.metrics")

# In multiprocess mode every worker writes its samples to memory-mapped files; a write to a page
# the filesystem has no room for kills the process with SIGBUS. A worker that finds less room than
# this when it first records keeps serving without metrics instead of dying, again and again.
MIN_FREE_BYTES = 8 << 20


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics."""

    enabled: bool = setting(True, "Serve Prometheus metrics.")
    path: str = setting("/metrics", "Where the service serves metrics (when metrics.port is 0).")
    port: int = setting(
        0,
        "Serve metrics on this separate port instead (from the gunicorn master; 0: on the service's own port).",
        check=between(0, 65535),
    )
    bind: str = setting("127.0.0.1", "Address of that separate metrics port.")


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def _free_bytes(folder: str) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _room_for_samples() -> bool:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return True
    free = _free_bytes(folder)
    if free < MIN_FREE_BYTES:
        logger.warning(
            "metrics off in process %d: %s has %d KiB free (needs %d KiB)",
            os.getpid(),
            folder,
            free >> 10,
            MIN_FREE_BYTES >> 10,
        )
        return False
    return True


class NoMetrics:
    """Metrics turned off (``metrics.enabled = false``): the same calls, recording nothing."""

    def request(self, op: str, result: str, error: str) -> None:
        pass

    def sent(self, sender: str, outcome: str) -> None:
        pass

    def mesibo(self, op: str, seconds: float, outcome: str) -> None:
        pass

    def mesibo_refused_app(self, op: str) -> None:
        pass

    def refusal(self, kind: str) -> None:
        pass

    def readiness(self, ready: bool) -> None:
        pass

    def quarantined(self, reason: str = "pumping") -> None:
        pass

    def delivery(self, sender: str, outcome: str) -> None:
        pass

    def audit_unwritten(self, outcome: str, rows: int) -> None:
        pass


class Metrics(NoMetrics):
    """The service's Prometheus metrics (``sender``: the configured sender's name, a label)."""

    def __init__(self, sender: str = "") -> None:
        self.sender = sender
        # (pid, whether this process may record): decided once per process, at its first sample
        self._recording: tuple[int, bool] = (0, False)
        # In multiprocess mode samples go to files, not to a registry; exposition collects them.
        registry = None if multiprocess_mode() else CollectorRegistry()
        self._registry = registry
        self.requests = Counter(
            "messenger_requests",
            "API requests by op, result and error code.",
            ["op", "result", "error"],
            registry=registry,
        )
        self.codes_sent = Counter(
            "messenger_codes_sent",
            "Codes handed to the sender, by sender and outcome.",
            ["sender", "outcome"],
            registry=registry,
        )
        self.mesibo_seconds = Histogram(
            "messenger_mesibo_request_seconds",
            "Latency of calls to mesibo's API.",
            ["op"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.mesibo_failures = Counter(
            "messenger_mesibo_failures",
            "Calls to mesibo that failed (unreachable, timeout, garbage).",
            ["op"],
            registry=registry,
        )
        self.mesibo_app_refusals = Counter(
            "messenger_mesibo_app_refusals",
            "Answers of mesibo that refuse the app token or app (AUTHFAIL and the like): every login fails.",
            ["op"],
            registry=registry,
        )
        self.refusals = Counter(
            "messenger_limit_refusals",
            "Requests refused by a limit, by kind.",
            ["kind"],
            registry=registry,
        )
        self.readiness_checks = Counter(
            "messenger_readiness_checks",
            "Answers of /readyz, by result (ready or unready).",
            ["result"],
            registry=registry,
        )
        self.deliveries = Counter(
            "messenger_deliveries",
            "Delivery receipts of codes sent, by sender and outcome (delivered or undelivered).",
            ["sender", "outcome"],
            registry=registry,
        )
        # labelled, like every metric here: an unlabelled one writes its sample file when it is made,
        # before _may_record could see that the multiprocess folder is full (SIGBUS at start-up)
        self.quarantines = Counter(
            "messenger_quarantines",
            "Destination prefixes quarantined for SMS pumping (many codes sent, few proved).",
            ["reason"],
            registry=registry,
        )
        self.audit_unwritten_events = Counter(
            "messenger_audit_events_unwritten",
            "Audit events a write failed for: kept to write later (retried) or given up (dropped).",
            ["outcome"],
            registry=registry,
        )

    # Label values must come from a small, known set: an op taken from the request as it is would
    # let anyone create a new time series (and, in multiprocess mode, file entries) per request.
    KNOWN_OPS = frozenset({"login", "logout", "deleteaccount"})

    def _may_record(self) -> bool:
        pid, allowed = self._recording
        if pid != os.getpid():
            allowed = _room_for_samples()
            self._recording = (os.getpid(), allowed)
            if allowed:  # series the alerts and the dashboard watch exist from the start, at 0
                self._first_series()
        return allowed

    # what the first series are made of: label values known before any event
    MESIBO_OPS = ("useradd", "otp", "userdel", "userset", "usersget")
    REFUSAL_KINDS = (*REFUSING, "quarantine")

    def _first_series(self) -> None:
        """Every labelled series an alert or a panel reads, at 0, from the first scrape: a series
        that appears only with its first event is invisible to rate() and increase() for that first
        burst, and panels read "No data" meanwhile."""
        for outcome in ("retried", "dropped"):
            self.audit_unwritten_events.labels(outcome)
        for op in self.MESIBO_OPS:
            self.mesibo_failures.labels(op)
            self.mesibo_app_refusals.labels(op)
            self.mesibo_seconds.labels(op)
        for kind in self.REFUSAL_KINDS:
            self.refusals.labels(kind)
        for result in ("ready", "unready"):
            self.readiness_checks.labels(result)
        for outcome in ("ok", "error"):
            self.codes_sent.labels(self.sender, outcome)
        for outcome in ("delivered", "undelivered"):
            self.deliveries.labels(self.sender, outcome)
        for reason in ("pumping", "undelivered"):
            self.quarantines.labels(reason)
        for op in self.KNOWN_OPS:  # the dashboard's "failures by error code" reads these
            self.requests.labels(op, "OK", "")
            for code in CODES:
                self.requests.labels(op, "FAIL", code)

    def request(self, op: str, result: str, error: str) -> None:
        if self._may_record():
            label = op if op in self.KNOWN_OPS else ("unknown" if op else "none")
            self.requests.labels(label, result, error or "").inc()

    def sent(self, sender: str, outcome: str) -> None:
        if self._may_record():
            self.codes_sent.labels(sender, outcome).inc()

    def mesibo(self, op: str, seconds: float, outcome: str) -> None:
        if self._may_record():
            self.mesibo_seconds.labels(op).observe(seconds)
            if outcome != "ok":
                self.mesibo_failures.labels(op).inc()

    def mesibo_refused_app(self, op: str) -> None:
        if self._may_record():
            self.mesibo_app_refusals.labels(op).inc()

    def refusal(self, kind: str) -> None:
        if self._may_record():
            self.refusals.labels(kind).inc()

    def quarantined(self, reason: str = "pumping") -> None:
        """``pumping``: many codes sent, few proved; ``undelivered``: many never arrived (receipts)."""
        if self._may_record():
            self.quarantines.labels(reason).inc()

    def delivery(self, sender: str, outcome: str) -> None:
        if self._may_record() and outcome in ("delivered", "undelivered"):
            self.deliveries.labels(sender, outcome).inc()

    def readiness(self, ready: bool) -> None:
        if self._may_record():
            self.readiness_checks.labels("ready" if ready else "unready").inc()

    def audit_unwritten(self, outcome: str, rows: int) -> None:
        if self._may_record():
            self.audit_unwritten_events.labels(outcome).inc(rows)

    def unavailable(self) -> str | None:
        """Why the metrics would be incomplete now (None: they are not): the workers record nothing
        while the multiprocess folder is (nearly) full."""
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if folder and _free_bytes(folder) < MIN_FREE_BYTES:
            return f"the metrics folder {folder} is full: workers record no samples"
        return None

    def exposition(self) -> tuple[bytes, str]:
        self._may_record()  # a worker asked before any event still shows every series, at 0
        if self._registry is not None:
            return generate_latest(self._registry), CONTENT_TYPE_LATEST
        return generate_latest(multiprocess_registry()), CONTENT_TYPE_LATEST


def multiprocess_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
