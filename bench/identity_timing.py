"""Whether the time a refused password login takes tells that the account exists (issue 21, item 5).

    python bench/identity_timing.py [--samples 220]

Against a real slapd and a real FreeRADIUS started here (FreeRADIUS with reject_delay = 0, so that
its own one-second delay of every reject, which hides the difference anyway, does not hide what the
service does): a wrong password for a known user and any password for an unknown one, alternated,
``--samples`` each, in process (Flask's test client); the medians and their ratio. SECURITY.md
keeps the figures.
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
from tools.directory import LDIF  # noqa: E402
from tools.processes import FreeRadius, Slapd  # noqa: E402

S = Slapd.SUFFIX
SECRET = "radius-shared-secret-1"
# the measurement asks hundreds of times: the limits that would stop it are off (0)
UNLIMITED = {
    "limits.failures_per_phone_per_day": 0,
    "limits.failures_per_phone_per_ip_per_day": 0,
    "limits.checks_per_ip_per_10min": 0,
    "limits.failures_per_device_per_day": 0,
}


def app_for(method: dict, folder: str):
    config = {
        "database.url": f"sqlite:///{folder}/timing-{method['auth.method']}.db",
        "sender.name": "memory",
        "mesibo.app_token": "timing-app-token-0123456789",
        "otp.secret": "timing-otp-secret-0123456789abcdef",
        "server.development": "false",
        "logging.requests": False,
        "metrics.enabled": False,
        "audit.enabled": False,
        **UNLIMITED,
        **method,
    }
    return create_app(config, environ={}).test_client()


def median_ms(client, user: str, password: str, samples: list[float]) -> None:
    started = time.perf_counter()
    answer = client.post("/", json={"op": "login", "appid": "com.example", "user": user, "password": password})
    samples.append((time.perf_counter() - started) * 1000)
    assert answer.get_json()["error"] == "BADLOGIN", answer.get_json()


def measure(name: str, client, known: tuple[str, str], unknown: tuple[str, str], count: int) -> str:
    for _ in range(10):  # warm-up: connections, caches
        median_ms(client, *known, [])
        median_ms(client, *unknown, [])
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(count):
        median_ms(client, *known, times["known"])
        median_ms(client, *unknown, times["unknown"])
    a, b = statistics.median(times["known"]), statistics.median(times["unknown"])
    return (
        f"{name}: {count} samples each, median known user (wrong password) {a:.2f} ms, unknown user {b:.2f} ms: "
        f"unknown / known = {b / a:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=220)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="messenger-identity-timing-")
    slapd = Slapd(Path(folder), LDIF)
    radius = FreeRadius(Path(folder), SECRET, 'ann Cleartext-Password := "ann-radius-1"\n', reject_delay=0)
    try:
        ldap = app_for(
            {
                "auth.method": "ldap",
                "auth.ldap.url": slapd.url,
                "auth.ldap.bind_dn": f"uid=finder,{S}",
                "auth.ldap.bind_password": "finder-secret",
                "auth.ldap.search_base": f"ou=people,{S}",
            },
            folder,
        )
        print(
            measure("LDAP (search, then bind)", ldap, ("ann", "wrong-1"), ("nobody", "wrong-1"), args.samples),
            flush=True,
        )
        rad = app_for(
            {
                "auth.method": "radius",
                "auth.radius.servers": [f"127.0.0.1:{radius.port}"],
                "auth.radius.secret": SECRET,
            },
            folder,
        )
        print(
            measure("RADIUS (reject_delay 0)", rad, ("ann", "wrong-1"), ("nobody", "wrong-1"), args.samples), flush=True
        )
    finally:
        slapd.stop()
        radius.stop()


if __name__ == "__main__":
    main()
