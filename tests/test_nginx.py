"""End to end through a real nginx with the shipped configuration (TLS swapped for plain HTTP),
in front of gunicorn with the shipped configuration, against the stand-in for mesibo."""

from __future__ import annotations

import http.client
import json
import re

import pytest
from helpers import APP_TOKEN, OTP_SECRET

from tools.processes import FakeMesibo, Nginx, Service, free_port, nginx_installed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not nginx_installed(), reason="nginx is not installed (.ci/run installs Debian's nginx-light)"),
]


@pytest.fixture(name="stack")
def _stack(tmp_path):
    fake = FakeMesibo(APP_TOKEN)
    backend_port = free_port()
    service = Service(
        tmp_path,
        {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/e2e.db",
            "MESSENGER_SENDER_NAME": "log",
            "MESSENGER_SERVER_TRUSTED_PROXIES": "1",
            "MESSENGER_LIMITS_SENDS_PER_IP_PER_HOUR": "2",
        },
        port=backend_port,
    )
    nginx = Nginx(tmp_path, backend_port)
    yield nginx.port, service, fake
    nginx.stop()
    service.stop()
    fake.stop()


def call(port, body, *, source="127.0.0.5", path="/", method="POST", headers=None):
    """One request to nginx from a chosen loopback source address."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def test_login_through_nginx_with_the_forwarded_client_ip(stack):
    port, service, fake = stack
    login = {"op": "login", "phone": "18005551234", "appid": "com.example"}
    status, _, body = call(port, login, headers={"X-Forwarded-For": "6.6.6.6"})  # forged by the client
    assert status == 200 and json.loads(body)["result"] == "OK"
    code = re.search(r"login code for 18005551234: (\d+)", service.log()).group(1)
    request_line = [line for line in service.log().splitlines() if "app.requests" in line][-1]
    assert "ip=127.0.0.5" in request_line  # the address nginx saw, not the forged one, not nginx's own

    status, headers, body = call(port, {**login, "otp": code})
    answer = json.loads(body)
    assert answer["result"] == "OK" and answer["token"] == fake.stats()["tokens"][-1]["token"]
    assert dict(headers)["Cache-Control"] == "no-cache, no-store, must-revalidate"

    # the per-IP cap (2 per hour here) counts the forwarded address
    assert json.loads(call(port, {**login, "phone": "12015550123"})[2])["result"] == "OK"
    refused = json.loads(call(port, {**login, "phone": "12015550124"})[2])
    assert refused["error"] == "RATELIMIT"
    assert json.loads(call(port, {**login, "phone": "12015550124"}, source="127.0.0.6")[2])["result"] == "OK"

    # the login is counted in the metrics, which answer only from the machine itself
    _, _, metrics = call(port, None, source="127.0.0.1", path="/metrics", method="GET")
    counted = re.search(r'messenger_requests_total\{error="",op="login",result="OK"\} (\S+)', metrics.decode())
    assert counted and float(counted.group(1)) >= 2
    assert call(port, None, source="127.0.0.5", path="/metrics", method="GET")[0] == 403
    assert APP_TOKEN not in service.log()


def test_health_checks_pass_through_while_the_api_keeps_its_envelope(stack):
    """With the service down, /readyz must fail for the load balancer, while an app still gets JSON."""
    port, service, _ = stack
    status, _, body = call(port, None, path="/readyz", method="GET")
    assert status == 200 and json.loads(body) == {"status": "ready", "database": "ok"}
    service.stop()
    status, _, body = call(port, None, path="/readyz", method="GET")
    assert status == 503 and json.loads(body)["status"] == "unavailable"  # not turned into a 200 envelope
    status, _, body = call(port, {"op": "login", "phone": "18005551234", "appid": "a"})
    answer = json.loads(body)
    assert status == 200 and answer["result"] == "FAIL" and answer["error"] == "INTERNAL"


def test_nginx_answers_its_own_errors_with_the_envelope(stack):
    port, _, _ = stack
    status, headers, body = call(port, b'{"op":"login","pad":"' + b"x" * 200_000 + b'"}')
    answer = json.loads(body)
    assert status == 200 and dict(headers)["Content-Type"] == "application/json"
    assert answer["result"] == "FAIL" and answer["error"] == "BADREQUEST"
    assert isinstance(answer["ts"], int) and answer["ts"] > 1_700_000_000
    # a body just over the service's own 64 KiB limit is refused by the service, also as the envelope
    status, _, body = call(port, b'{"op":"login","pad":"' + b"x" * 70_000 + b'"}')
    assert json.loads(body)["error"] == "BADREQUEST"
