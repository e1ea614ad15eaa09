"""The benchmark: the service against the framework's floor, measured side by side in one run.

    python bench/run.py            # the full run: 10 s per measurement, 3 repetitions (about 6 minutes)
    python bench/run.py --quick    # about 20 seconds: proves the harness works (CI runs this)

Everything runs on 127.0.0.1: the stand-in for mesibo, the service under gunicorn with the shipped
configuration (deploy/gunicorn.conf.py, 2 workers), and a baseline - a bare Flask app that parses a
JSON body and answers a constant JSON object - under the same settings. wrk drives each in turn,
alternating service and baseline. Results go to bench/results/ as JSON and a markdown table.
See docs/PERFORMANCE.md for the method and the numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.codes import Codes  # noqa: E402
from app.settings import OtpSettings  # noqa: E402
from bench import probes  # noqa: E402
from tools.processes import FakeMesibo, Service, free_port  # noqa: E402

APP_TOKEN = "bench-app-token-0123456789"
OTP_SECRET = "bench-otp-secret-0123456789abcdef"
CODE = "123456"
BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "wrk_script.lua"
# wrk's threads each count phones in a range of their own (see wrk_script.lua); each repetition
# starts further along so no phone is asked twice (the cooldown would refuse it).
REP_STRIDE = 150_000

# CPU per request as a multiple of the floor's, measured in the same run (issue 18)
CPU_TARGETS = {"a": 2.0, "b": 2.5, "d": 1.3}
TARGETS = {
    "a": "CPU ≤ 2.0 × the floor's",
    "b": "CPU ≤ 2.5 × the floor's",
    "c": "≥ 1,152 req/s (0.9 × 64 / 0.05 s), p99 ≤ 150 ms",
    "d": "CPU ≤ 1.3 × the floor's",
    "e": "p50 and p99 within 1.2 × of the empty store",
}
MEMORY_TARGETS = {"pss_mib": 30, "growth": 0.05}


def find_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get"):
        print("wrk not found: installing Debian's package", flush=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is needed: apt-get install wrk")
    return found


def gunicorn(app: str, port: int, env: dict[str, str], workers: int, folder: Path) -> Service:
    """An app under gunicorn with the shipped configuration (its log is kept in ``folder``)."""
    try:
        return Service(folder, env, workers=workers, port=port, app=app)
    except RuntimeError as exc:
        sys.exit(str(exc)[-3000:])


TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(master: int) -> float:
    """User + system CPU time of every thread of a process and its children (the kernel's counters),
    and of the children it has already reaped: gunicorn replaces a worker after max_requests, and
    the CPU a replaced worker spent must still count."""
    pids = [master] + [
        int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and _parent(entry) == master
    ]
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    master_fields = Path(f"/proc/{master}/stat").read_text().rsplit(")", 1)[1].split()
    total += int(master_fields[13]) + int(master_fields[14])  # cutime, cstime: reaped workers
    return total / TICKS


def _parent(entry: Path) -> int:
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.wrk = find_wrk()
        self.tmp = Path(tempfile.mkdtemp(prefix="messenger-bench-"))
        self.codes = Codes(OTP_SECRET.encode(), OtpSettings())
        self.processes: list[FakeMesibo | Service] = []
        self.restore_migrate_req = self.as_deployed()

    def as_deployed(self) -> str:
        """The machine as README's Deploy sets it up: net.ipv4.tcp_migrate_req=1, with which the shipped
        gunicorn configuration gives each worker a listening socket of its own. As root the benchmark
        sets it for its run and puts the old value back; otherwise it says what it measures."""
        path = Path("/proc/sys/net/ipv4/tcp_migrate_req")
        try:
            old = path.read_text().strip()
        except OSError:
            return ""
        if old == "1":
            return ""
        try:
            path.write_text("1\n")
        except OSError:
            print("net.ipv4.tcp_migrate_req is 0 (README, Deploy, sets 1): the workers share one socket", flush=True)
            return ""
        return old

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.restore_migrate_req:
            Path("/proc/sys/net/ipv4/tcp_migrate_req").write_text(self.restore_migrate_req + "\n")

    # -- processes -------------------------------------------------------------

    def start_fake_mesibo(self) -> None:
        self.fake = FakeMesibo(APP_TOKEN)
        self.fake_port = self.fake.port
        self.processes.append(self.fake)

    def fake_control(self, **settings) -> None:
        self.fake.control(**settings)

    def start_service(self, database: Path, extra: dict[str, str] | None = None) -> tuple[Service, int]:
        port = free_port()
        env = {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": f"http://127.0.0.1:{self.fake_port}/backend/",
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{database}",
            "MESSENGER_SENDER_NAME": "log",
            # limits raised for the run: every request comes from 127.0.0.1
            "MESSENGER_LIMITS_SENDS_PER_IP_PER_HOUR": "1000000",
            "MESSENGER_LIMITS_CHECKS_PER_IP_PER_10MIN": "1000000",
            "MESSENGER_LIMITS_GLOBAL_SENDS_PER_HOUR": "1000000",
            # the load's phones never prove their codes: the quarantine would stop it after 50
            "MESSENGER_LIMITS_QUARANTINE_PREFIX_DIGITS": "0",
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / f"metrics-{port}"),
        }
        service = gunicorn("wsgi:app", port, {**env, **self.model_env(), **(extra or {})}, self.args.workers, self.tmp)
        self.processes.append(service)
        return service, port

    def model_env(self) -> dict[str, str]:
        """The concurrency model under test, for the service and the floor alike."""
        env = {}
        if self.args.threads:
            env["GUNICORN_THREADS"] = str(self.args.threads)
        if self.args.worker_class:
            env["GUNICORN_WORKER_CLASS"] = self.args.worker_class
        return env

    def stop_process(self, service: Service) -> None:
        service.stop()
        self.processes.remove(service)

    # -- load ------------------------------------------------------------------

    def wrk_run(
        self,
        port: int,
        body: str,
        *,
        connections: int,
        offset: int = 0,
        path: str = "/",
        server: int = 0,
        prefix: str = "1201",
        duration: int = 0,
    ) -> dict:
        """One wrk run; with ``server`` (a gunicorn master's pid) also the CPU it spent per request."""
        cpu_before = tree_cpu_seconds(server) if server else 0.0
        out = self.tmp / f"wrk-{time.monotonic_ns()}.json"
        env = {
            **os.environ,
            "BENCH_BODY": body,
            "BENCH_OUT": str(out),
            "BENCH_OFFSET": str(offset),
            "BENCH_PREFIX": prefix,
        }
        subprocess.run(
            [
                self.wrk,
                "-t2",
                f"-c{connections}",
                f"-d{duration or self.args.duration}s",
                "--timeout",
                "5s",
                "-s",
                str(LUA),
                f"http://127.0.0.1:{port}{path}",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        result = json.loads(out.read_text())
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        if server:
            result["cpu_us"] = (tree_cpu_seconds(server) - cpu_before) / max(1, result["requests"]) * 1e6
        return result

    def pre_issue(self, database: Path, appid: str, offset: int, per_thread: int) -> None:
        """Right codes for the phones wrk will use (both threads' ranges), written straight into the store."""
        expires = int(time.time()) + 600
        rows = []
        for thread in range(2):
            start = 2000000 + thread * 1000000 + offset
            for n in range(start, start + per_thread):
                phone = f"1201{n}"
                # the store keeps the address as its keyed hash
                rows.append((self.codes.blind(phone), appid, self.codes.digest(phone, appid, CODE), expires))
        with sqlite3.connect(database) as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO codes (address, appid, digest, expires_at, attempts) VALUES (?, ?, ?, ?, 0)",
                rows,
            )

    @staticmethod
    def fill_expired(database: Path, count: int, policies: int) -> None:
        """``count`` expired codes and ``count`` expired counters, as months of traffic would leave, and
        ``policies`` entries on the block and allow lists (none matching the phones the load uses)."""
        past = int(time.time()) - 86400
        with sqlite3.connect(database) as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO policy (pattern, kind, note, added_at) VALUES (?, ?, '', 0)",
                ((f"44{n:09d}" + ("*" if n % 2 else ""), "block" if n % 3 else "allow") for n in range(policies)),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO codes (address, appid, digest, expires_at, attempts) "
                "VALUES (?, 'old-app', ?, ?, 0)",
                ((f"4470{n:08d}", "0" * 64, past - n % 3600) for n in range(count)),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO counters (key, count, expires_at) VALUES (?, 1, ?)",
                ((f"send:4470{n:08d}", past - n % 3600) for n in range(count)),
            )

    @staticmethod
    def metrics_of(port: int) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        counts: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("messenger_requests_total{"):
                labels, value = line.rsplit(" ", 1)
                if float(value):  # the series made at 0 at start-up say nothing about the run
                    counts[labels[len("messenger_requests_total") :]] = float(value)
        return counts

    # -- the run ---------------------------------------------------------------

    def run(self) -> dict:
        args = self.args
        self.start_fake_mesibo()
        per_thread = 3000 if args.quick else 60000
        step1 = '{"op":"login","phone":"{phone}","appid":"bench"}'
        step2 = '{"op":"login","phone":"{phone}","appid":"bench-2","otp":"' + CODE + '"}'
        flood = '{"op":"login","phone":"12015550123","appid":"bench"}'
        useradd = json.dumps({"op": "useradd", "token": APP_TOKEN, "user": {"address": "x", "token": {"appid": "a"}}})
        samples: dict[str, list[dict]] = {key: [] for key in ("stand-in", "baseline", "a", "b", "c", "d", "f")}

        baseline_port = free_port()
        baseline = gunicorn("baseline:app", baseline_port, self.model_env(), args.workers, self.tmp)
        self.processes.append(baseline)
        # (f), a reference: the floor plus step 1's one store transaction (bench/baseline_store.py)
        store_floor_port = free_port()
        store_floor = gunicorn(
            "baseline_store:app",
            store_floor_port,
            {**self.model_env(), "DATABASE_URL": f"sqlite:///{self.tmp}/floor-store.db"},
            args.workers,
            self.tmp,
        )
        self.processes.append(store_floor)
        database = self.tmp / "bench.db"
        service, port = self.start_service(database)

        def floor() -> dict:
            return self.wrk_run(baseline_port, '{"op":"login"}', connections=16, server=baseline.process.pid)

        for rep in range(args.reps):
            offset = rep * REP_STRIDE
            print(f"repetition {rep + 1}/{args.reps}", flush=True)
            samples["stand-in"].append(self.wrk_run(self.fake_port, useradd, connections=16, path="/backend/"))
            samples["baseline"].append(floor())
            samples["a"].append(self.wrk_run(port, step1, connections=16, offset=offset, server=service.process.pid))
            samples["f"].append(
                self.wrk_run(store_floor_port, step1, connections=16, offset=offset, server=store_floor.process.pid)
            )
            samples["baseline"].append(floor())
            self.pre_issue(database, "bench-2", offset, per_thread)
            samples["b"].append(self.wrk_run(port, step2, connections=16, offset=offset, server=service.process.pid))
            samples["baseline"].append(floor())
            samples["d"].append(self.wrk_run(port, flood, connections=16, server=service.process.pid))
            self.fake_control(latency_ms=50)
            self.pre_issue(database, "bench-2", offset + REP_STRIDE // 2, per_thread // 2)
            split = probes.sample_connections(service.process.pid, port, after=args.duration / 2)
            samples["c"].append(self.wrk_run(port, step2, connections=64, offset=offset + REP_STRIDE // 2))
            split["thread"].join()
            samples["c"][-1]["connections_per_worker"] = split.get("split", [])
            self.fake_control(latency_ms=0)
        outcomes = self.metrics_of(port)  # what the scenarios above did (the held logins answer BADAPP)
        memory = {"after_run": [probes.memory_mib(pid) for pid in probes.workers_of(service.process.pid)]}
        memory["growth"] = self.growth()
        held = self.held(database, port)
        self.stop_process(service)

        # (e): the same step 2 load on a fresh store, then on one holding a million expired rows of each
        # kind and 100,000 entries on the block and allow lists (step 2 asks the allow list)
        e: dict[str, list[dict]] = {"empty": [], "full": []}
        for kind in ("empty", "full"):
            fresh = self.tmp / f"e-{kind}.db"
            service, port = self.start_service(fresh)
            if kind == "full":
                self.fill_expired(fresh, 20000 if args.quick else 1_000_000, policies=100_000)
            for rep in range(args.reps):
                self.pre_issue(fresh, "bench-e", rep * REP_STRIDE, per_thread)
                body = step2.replace("bench-2", "bench-e")
                e[kind].append(
                    self.wrk_run(port, body, connections=16, offset=rep * REP_STRIDE, server=service.process.pid)
                )
            self.stop_process(service)
        return {"samples": samples, "e": e, "memory": memory, "held": held, "outcomes": outcomes}

    def growth(self) -> dict:
        """Worker memory before and after step 1 for ``--growth`` new phones, after a warm-up of the
        same load, on a service of its own that never recycles its workers (GUNICORN_MAX_REQUESTS=0:
        with the shipped 100,000 both workers could be replaced within the run, leaving nothing to
        compare)."""
        service, port = self.start_service(self.tmp / "growth.db", {"GUNICORN_MAX_REQUESTS": "0"})
        try:
            return self._growth(service, port)
        finally:
            self.stop_process(service)

    def _growth(self, service: Service, port: int) -> dict:
        body = '{"op":"login","phone":"{phone}","appid":"bench-g"}'
        warm = self.wrk_run(port, body, connections=16, offset=0, prefix="1202", duration=2 if self.args.quick else 20)
        pids = probes.workers_of(service.process.pid)
        before = [probes.memory_mib(pid) for pid in pids]
        done = warm["requests"]
        while done < warm["requests"] + self.args.growth:
            run = self.wrk_run(
                port, body, connections=16, offset=done // 2, prefix="1202", duration=2 if self.args.quick else 20
            )
            done += run["requests"]
        # a worker gunicorn replaced meanwhile (max_requests) says nothing about growth: left out
        alive = set(probes.workers_of(service.process.pid))
        kept = [(b, probes.memory_mib(pid)) for pid, b in zip(pids, before, strict=True) if pid in alive]
        return {
            "requests": done - warm["requests"],
            "before": [b for b, _ in kept],
            "after": [a for _, a in kept],
            "replaced": len(pids) - len(kept),
        }

    def held(self, database: Path, port: int) -> dict:
        """300 step-2 logins held by a mesibo that trickles its answer; step 1 and /healthz meanwhile."""
        count = 60 if self.args.quick else 300
        phones = [f"1201{9000000 + n}" for n in range(count)]
        expires = int(time.time()) + 600
        with sqlite3.connect(database) as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO codes (address, appid, digest, expires_at, attempts) VALUES (?, ?, ?, ?, 0)",
                [
                    (self.codes.blind(phone), "bench-h", self.codes.digest(phone, "bench-h", CODE), expires)
                    for phone in phones
                ],
            )
        self.fake_control(fail="trickle")
        try:
            # the documented deadline of a login waiting on mesibo: connect + read timeout (3 + 10 s)
            return probes.held_logins(port, phones, "bench-h", CODE, probe_seconds=5, deadline=13.0 + 1.0)
        finally:
            self.fake_control(fail="none")


def median(runs: list[dict], key: str) -> float:
    if key in ("rps", "cpu_us"):
        values = [run[key] for run in runs if key in run]
        return statistics.median(values) if values else 0.0
    return statistics.median(run["latency_us"][key] for run in runs) / 1000


def report(result: dict, args: argparse.Namespace) -> tuple[dict, str]:
    samples, e = result["samples"], result["e"]
    base = median(samples["baseline"], "rps")
    base_cpu = median(samples["baseline"], "cpu_us")
    rows, summary = [], {}

    def cpu_ratio(runs: list[dict]) -> float:
        cpu = median(runs, "cpu_us")
        return cpu / base_cpu if cpu and base_cpu else 0.0

    def row(name, label, runs, ratio_to, target, ok):
        rps, p50, p99 = median(runs, "rps"), median(runs, "p50"), median(runs, "p99")
        cpu = median(runs, "cpu_us")
        cpu_text = f"{cpu:,.0f} ({cpu / base_cpu:.2f}×)" if cpu and base_cpu else "—"
        summary[name] = {
            "cpu_us_per_request": round(cpu) if cpu else None,
            "cpu_ratio_to_floor": round(cpu / base_cpu, 2) if cpu and base_cpu else None,
            "rps": round(rps),
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "ratio": round(rps / ratio_to, 2) if ratio_to else None,
            "target": target,
            "met": ok,
        }
        ratio = f"{rps / ratio_to:.2f}" if ratio_to else "—"
        rows.append(
            f"| {label} | {cpu_text} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio} | {target} | "
            f"{'yes' if ok else 'no' if ok is not None else '—'} |"
        )

    stand_in_ok = median(samples["stand-in"], "rps") > 2 * median(samples["c"], "rps")
    row("stand-in", "stand-in for mesibo (useradd)", samples["stand-in"], base, "never the bottleneck", stand_in_ok)
    row("baseline", "floor: bare Flask JSON route", samples["baseline"], base, "—", None)
    labels = {
        "a": "(a) step 1, a new phone each time",
        "b": "(b) step 2, right codes, mesibo 0 ms",
        "d": "(d) step 1 flood, one phone (RATELIMIT)",
    }
    for key in ("a", "b"):
        row(key, labels[key], samples[key], base, TARGETS[key], cpu_ratio(samples[key]) <= CPU_TARGETS[key])
    row(
        "f",
        "(f) reference: the floor + step 1's one store transaction",
        samples["f"],
        base,
        "— (the least a step 1 on this store costs)",
        None,
    )
    c_ok = median(samples["c"], "rps") >= 0.9 * 1280 and median(samples["c"], "p99") <= 150
    row("c", "(c) step 2, mesibo 50 ms, 64 connections", samples["c"], 1280, TARGETS["c"] + " (ratio: to 1,280)", c_ok)
    row("d", labels["d"], samples["d"], base, TARGETS["d"], cpu_ratio(samples["d"]) <= CPU_TARGETS["d"])
    empty_p50, empty_p99 = median(e["empty"], "p50"), median(e["empty"], "p99")
    full_p50, full_p99 = median(e["full"], "p50"), median(e["full"], "p99")
    e_ok = full_p50 <= 1.2 * empty_p50 and full_p99 <= 1.2 * empty_p99
    row("e-empty", "(e) step 2, empty store", e["empty"], base, "—", None)
    expired = "20 thousand" if args.quick else "1 million"
    row(
        "e-full",
        f"(e) step 2, {expired} expired codes + counters, 100,000 list entries",
        e["full"],
        base,
        TARGETS["e"],
        e_ok,
    )

    splits = [run.get("connections_per_worker", []) for run in samples["c"]]
    # "spread": no worker holds more than two thirds of the connections (64 over 2 workers: ≤ 42)
    spread = all(split and max(split) <= 2 * sum(split) / 3 for split in splits)
    memory = result["memory"]
    pss = [round(sizes["pss"], 1) for sizes in memory["after_run"]]
    before = [sizes["rss"] for sizes in memory["growth"]["before"]]
    after = [sizes["rss"] for sizes in memory["growth"]["after"]]
    growth = [b2 / b1 - 1 for b1, b2 in zip(before, after, strict=False)]
    pss_ok = bool(pss) and max(pss) <= MEMORY_TARGETS["pss_mib"]
    growth_ok = bool(growth) and max(growth) <= MEMORY_TARGETS["growth"]
    held = result["held"]
    held_ok = (
        held["answered_within_deadline"] == held["held"]
        and held["step1_ok"] == held["probes"]
        and held["healthz_ok"] == held["probes"]
        and held["step1_max_s"] <= 1.0
        and held["healthz_max_s"] <= 1.0
    )
    summary.update(
        connections_per_worker=splits,
        connections_spread=spread,
        pss_mib_per_worker=pss,
        rss_growth={"requests": memory["growth"]["requests"], "before_mib": before, "after_mib": after},
        held_logins=held,
        outcomes=result["outcomes"],
        targets_met={
            "cpu": all(summary[k]["met"] for k in ("a", "b", "d")),
            "latency_bound": c_ok,
            "held_logins": held_ok,
            "connections_spread": spread,
            "pss": pss_ok,
            "growth": growth_ok,
        },
    )

    def yes(ok: bool) -> str:
        return "yes" if ok else "no"

    table = "\n".join(
        [
            "| scenario | CPU µs/req (× floor) | req/s | p50 ms | p99 ms | ratio | target | met |",
            "|---|---:|---:|---:|---:|---:|---|---|",
            *rows,
            "",
            f"(e) p50 {full_p50:.2f} vs {empty_p50:.2f} ms ({full_p50 / empty_p50:.2f}×), "
            f"p99 {full_p99:.2f} vs {empty_p99:.2f} ms ({full_p99 / empty_p99:.2f}×).",
            f"(c) connections per worker, each repetition: {splits} (spread: {yes(spread)}).",
            f"Held logins: {held['held']} step-2 logins on a trickling mesibo; {held['answered_within_deadline']} "
            f"answered within {held['deadline_s']:.0f} s (slowest {held['slowest_held_s']} s); meanwhile step 1 "
            f"{held['step1_ok']}/{held['probes']} OK, slowest {held['step1_max_s']} s; /healthz {held['healthz_ok']}/"
            f"{held['probes']}, slowest {held['healthz_max_s']} s (target: all, each ≤ 1 s: {yes(held_ok)}).",
            f"PSS per worker after the run: {', '.join(f'{x:.1f} MiB' for x in pss)} "
            f"(target ≤ {MEMORY_TARGETS['pss_mib']} MiB: {yes(pss_ok)}).",
            f"RSS per worker over {memory['growth']['requests']:,} more step-1 requests (new phones; "
            f"{memory['growth']['replaced']} replaced by gunicorn meanwhile, left out): "
            + ", ".join(f"{b1:.1f} → {b2:.1f} MiB ({g:+.1%})" for b1, b2, g in zip(before, after, growth, strict=False))
            + f" (target ≤ +{MEMORY_TARGETS['growth']:.0%}: {yes(growth_ok)}).",
        ]
    )
    return summary, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the service against a bare Flask baseline.")
    parser.add_argument("--quick", action="store_true", help="1 s per measurement, 1 repetition")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="threads per worker (default: the shipped config's)")
    parser.add_argument("--growth", type=int, default=200_000, help="step-1 requests of the memory-growth load")
    parser.add_argument("--worker-class", default="", help="gunicorn worker class (default: the shipped config's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.reps, args.growth = 1, 1, 2000
    bench = Bench(args)
    try:
        result = bench.run()
    finally:
        bench.close()
    summary, table = report(result, args)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    model = args.worker_class or "the shipped worker class"
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {args.workers} gunicorn workers ({model})"
    (args.out / f"bench-{stamp}.json").write_text(
        json.dumps(
            {"machine": machine, "duration_s": args.duration, "reps": args.reps, "summary": summary, "raw": result},
            indent=2,
        )
    )
    (args.out / f"bench-{stamp}.md").write_text(
        f"{machine}; {args.duration} s × {args.reps} repetitions, medians.\n\n{table}\n"
    )
    print(table)
    print(f"\nwritten to {args.out}/bench-{stamp}.json and .md")


if __name__ == "__main__":
    main()
