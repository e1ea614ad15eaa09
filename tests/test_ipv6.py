"""IPv6 clients are counted by network, not by address - for real: addresses of one /64 on the
loopback of a network namespace the test makes, the shipped nginx listening on IPv6 in front of the
shipped gunicorn, requests sent from each of those addresses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tools.processes import ROOT, nginx_installed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not nginx_installed(), reason="nginx is not installed (.ci/run installs Debian's nginx-light)"),
]

ONE_NET = "2001:db8:1:2"  # an attacker's /64
OTHER_NET = "2001:db8:1:3"

SCRIPT = r"""
import http.client, json, re, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/tests")
from helpers import APP_TOKEN, OTP_SECRET
from tools.processes import FakeMesibo, Nginx, Service, free_port

def call(port, source, method="POST", path="/", body=None):
    conn = http.client.HTTPConnection("::1", port, timeout=15, source_address=(source, 0))
    try:
        data = json.dumps(body) if body else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw.startswith(b"{") else None)
    finally:
        conn.close()

folder = Path(tempfile.mkdtemp())
fake = FakeMesibo(APP_TOKEN)
backend = free_port()
service = Service(folder, {"MESIBO_APP_TOKEN": APP_TOKEN, "MESIBO_API_URL": fake.url, "OTP_SECRET": OTP_SECRET,
                           "DATABASE_URL": f"sqlite:///{folder}/v6.db", "MESSENGER_SENDER_NAME": "log",
                           "MESSENGER_SERVER_TRUSTED_PROXIES": "1"}, port=backend)
nginx = Nginx(folder, backend, site_edit=lambda text: re.sub(
    r"listen 127\.0\.0\.1:(\d+);", r"listen 127.0.0.1:\1; listen [::1]:\1;", text))
found = {}
try:
    one, other = sys.argv[2], sys.argv[3]
    # the service's per-address cap (20 codes per hour): 25 addresses of one /64, a code each
    steps = [call(nginx.port, f"{one}::{n + 1:x}", body={"op": "login", "phone": f"1201555{n:04d}", "appid": "a"})
             for n in range(25)]
    found["step1"] = [answer.get("error", answer["result"]) if answer else status for status, answer in steps]
    status, answer = call(nginx.port, f"{other}::1", body={"op": "login", "phone": "12015559999", "appid": "a"})
    found["other_net"] = answer["result"] if answer else status
    # nginx's own guard on health checks (5 per second, burst 10), from 30 addresses of the /64
    found["health"] = [call(nginx.port, f"{one}::{n + 100:x}", method="GET", path="/healthz")[0] for n in range(30)]
    found["health_other_net"] = call(nginx.port, f"{other}::2", method="GET", path="/healthz")[0]
finally:
    nginx.stop(); service.stop(); fake.stop()
print(json.dumps(found))
"""


def test_one_ipv6_network_is_one_client_for_the_service_and_for_nginx(tmp_path):
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.fail("this test needs root and unshare (a network namespace of its own)")
    script = tmp_path / "v6.py"
    script.write_text(SCRIPT)
    addresses = " && ".join(
        f"ip -6 addr add {net}::{n:x}/128 dev lo nodad"
        for net, count in ((ONE_NET, 140), (OTHER_NET, 3))
        for n in range(1, count)
    )
    inner = f"ip link set lo up && {addresses} && exec {sys.executable} {script} {ROOT} {ONE_NET} {OTHER_NET}"
    run = subprocess.run(["unshare", "-n", "sh", "-c", inner], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"one /64: step 1 {found['step1']}; health {found['health']}")
    # 25 addresses of one /64 are one client: 20 codes, then RATELIMIT (each address had its own 20)
    assert found["step1"] == ["OK"] * 20 + ["RATELIMIT"] * 5, found["step1"]
    assert found["other_net"] == "OK"  # another /64 is another client
    # nginx's limit counts the /64 too: past the burst, its own 429
    assert found["health"][:10] == [200] * 10 and 429 in found["health"], found["health"]
    assert found["health_other_net"] == 200
