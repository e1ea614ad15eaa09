"""What the benchmark reads off the running service besides wrk's figures: each worker's memory (PSS
and RSS) and connections, and how step 1 and /healthz answer while mesibo holds many logins."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from pathlib import Path


def workers_of(master: int) -> list[int]:
    """The pids of a gunicorn master's workers."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and line.split()[1] == str(master):
                pids.append(int(entry.name))
    return sorted(pids)


def memory_mib(pid: int) -> dict[str, float]:
    """A process's PSS (its share of the pages it shares with the master and its siblings) and RSS."""
    sizes = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Pss", "Rss"):
            sizes[name.lower()] = int(value.split()[0]) / 1024
    return sizes


def connections_per_worker(master: int, port: int) -> list[int]:
    """How many established connections to ``port`` each worker holds (sockets matched by inode)."""
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                established.add(fields[9])
    counts = []
    for pid in workers_of(master):
        held = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in established:
                    held += 1
        except OSError:
            continue
        counts.append(held)
    return counts


def sample_connections(master: int, port: int, after: float) -> dict:
    """Read the connection split ``after`` seconds from now, in the background (while wrk runs)."""
    found: dict = {}

    def read() -> None:
        time.sleep(after)
        found["split"] = connections_per_worker(master, port)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    found["thread"] = thread
    return found


def post(port: int, body: dict, timeout: float) -> tuple[float, dict | None]:
    """One POST on a connection of its own: (seconds it took, the envelope or None)."""
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/", json.dumps(body), {"Content-Type": "application/json"})
        answer = json.loads(connection.getresponse().read())
    except (OSError, ValueError, http.client.HTTPException):
        answer = None
    finally:
        connection.close()
    return time.monotonic() - began, answer


def get(port: int, path: str, timeout: float) -> tuple[float, int]:
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        status = 0
    finally:
        connection.close()
    return time.monotonic() - began, status


def held_logins(port: int, phones: list[str], appid: str, code: str, probe_seconds: float, deadline: float) -> dict:
    """Step 2 for every phone at once (mesibo is made to trickle by the caller), then - while they are
    held - step 1 for new phones and /healthz every 0.2 s; then wait for every held login's answer."""
    results: list[tuple[float, dict | None]] = []
    lock = threading.Lock()

    def login(phone: str) -> None:
        outcome = post(port, {"op": "login", "appid": appid, "phone": phone, "otp": code}, timeout=deadline + 30)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=login, args=(phone,), daemon=True) for phone in phones]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let them all reach mesibo
    step1, health = [], []
    ends, n = time.monotonic() + probe_seconds, 0
    while time.monotonic() < ends:
        took, answer = post(port, {"op": "login", "appid": "bench-probe", "phone": f"1203555{n:04d}"}, timeout=30)
        step1.append((took, answer is not None and answer.get("result") == "OK"))
        health.append(get(port, "/healthz", timeout=30))
        n += 1
        time.sleep(0.2)
    for thread in threads:
        thread.join(timeout=deadline + 35)
    answered = [took for took, answer in results if answer is not None and "op" in answer]
    return {
        "held": len(phones),
        "answered": len(answered),
        "answered_within_deadline": sum(1 for took in answered if took <= deadline),
        "deadline_s": deadline,
        "slowest_held_s": round(max(answered, default=0.0), 2),
        "probes": len(step1),
        "step1_ok": sum(1 for _, ok in step1 if ok),
        "step1_max_s": round(max((took for took, _ in step1), default=0.0), 3),
        "healthz_ok": sum(1 for _, status in health if status == 200),
        "healthz_max_s": round(max((took for took, _ in health), default=0.0), 3),
    }
