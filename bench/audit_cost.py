"""What the audit trail costs a login, in CPU time per request, measured side by side in one run.

    python bench/audit_cost.py [--requests 3000] [--rounds 5]

Step 1 for a new phone each time, in process (Flask's test client, SQLite in a temporary folder),
alternating rounds with the trail on and off; the medians are compared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402


def app_with(audit: bool, folder: str):
    config = {
        "database.url": f"sqlite:///{folder}/audit-{audit}.db",
        "sender.name": "memory",
        "mesibo.app_token": "bench-app-token-0123456789",
        "otp.secret": "bench-otp-secret-0123456789abcdef",
        "server.development": "false",
        "logging.requests": False,
        "metrics.enabled": False,
        "audit.enabled": audit,
        "limits.sends_per_ip_per_hour": 0,
        "limits.global_sends_per_hour": 0,
    }
    return create_app(config, environ={})


def cpu_per_request(client, start: int, count: int) -> float:
    began = time.process_time()
    for n in range(start, start + count):
        answer = client.post("/", json={"op": "login", "phone": f"1201{2000000 + n}", "appid": "bench"}).get_json()
        assert answer["result"] == "OK", answer
    return (time.process_time() - began) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="messenger-audit-bench-")
    clients = {audit: app_with(audit, folder).test_client() for audit in (False, True)}
    samples: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for audit in (False, True) if round_ % 2 == 0 else (True, False):
            samples[audit].append(cpu_per_request(clients[audit], round_ * args.requests, args.requests))
    off, on = statistics.median(samples[False]), statistics.median(samples[True])
    print(f"step 1, CPU per request: trail off {off:.0f} µs, on {on:.0f} µs: +{on - off:.0f} µs ({on / off - 1:+.0%})")


if __name__ == "__main__":
    main()
