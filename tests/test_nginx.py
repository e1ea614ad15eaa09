"""End to end through a real nginx with the shipped configuration (TLS swapped for plain HTTP),
in front of gunicorn with the shipped configuration, against the stand-in for mesibo."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time

import pytest
from helpers import APP_TOKEN, OTP_SECRET

from tools.processes import ROOT, FakeMesibo, Nginx, Service, free_port, nginx_installed, unit_environment

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
            # as the shipped unit sets it: the shipped files must work together as shipped
            "MESSENGER_SERVER_TRUSTED_PROXIES": unit_environment()["MESSENGER_SERVER_TRUSTED_PROXIES"],
            "MESSENGER_LIMITS_SENDS_PER_IP_PER_HOUR": "2",
        },
        port=backend_port,
    )
    nginx = Nginx(tmp_path, backend_port)  # with Debian's main nginx.conf settings
    yield nginx.port, service, fake, nginx
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
    port, service, fake, _ = stack
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
    port, service, _, _ = stack
    status, _, body = call(port, None, path="/readyz", method="GET")
    assert status == 200 and json.loads(body) == {"status": "ready", "database": "ok"}
    service.stop()
    status, _, body = call(port, None, path="/readyz", method="GET")
    assert status == 503 and json.loads(body)["status"] == "unavailable"  # not turned into a 200 envelope
    status, _, body = call(port, {"op": "login", "phone": "18005551234", "appid": "a"})
    answer = json.loads(body)
    assert status == 200 and answer["result"] == "FAIL" and answer["error"] == "INTERNAL"


def test_nginx_answers_its_own_errors_with_the_envelope(stack):
    port, _, _, _ = stack
    status, headers, body = call(port, b'{"op":"login","pad":"' + b"x" * 200_000 + b'"}')
    answer = json.loads(body)
    assert status == 200 and dict(headers)["Content-Type"] == "application/json"
    assert answer["result"] == "FAIL" and answer["error"] == "BADREQUEST"
    assert isinstance(answer["ts"], int) and answer["ts"] > 1_700_000_000
    # a body just over the service's own 64 KiB limit is refused by the service, also as the envelope
    status, _, body = call(port, b'{"op":"login","pad":"' + b"x" * 70_000 + b'"}')
    assert json.loads(body)["error"] == "BADREQUEST"


def raw_request(port, data: bytes, source="127.0.0.5") -> bytes:
    """Bytes as a broken client sends them; what nginx answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
        (b"POST / HTTP/3.7\r\nHost: x\r\n\r\n", b"505"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n", b"400"),
    ],
    ids=["bad-request-line", "unknown-transfer-encoding", "bad-version", "malformed-chunks"],
)
def test_nginx_answers_malformed_requests_with_the_envelope_and_no_version(stack, data, status):
    port = stack[0]
    answer = raw_request(port, data)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] in (status, b"400"), head
    assert json.loads(body)["error"] == "BADREQUEST", answer
    assert b"Strict-Transport-Security" in head and b"Server: nginx\r\n" in head + b"\r\n"  # no version


def test_nginx_keeps_hsts_and_hides_its_version_on_its_own_answers(stack):
    port, service, _, _ = stack
    _, headers, _ = call(port, b'{"op":"login","pad":"' + b"x" * 200_000 + b'"}')
    assert "Strict-Transport-Security" in dict(headers) and dict(headers)["Server"] == "nginx"
    service.stop()
    _, headers, _ = call(port, {"op": "logout"})
    assert "Strict-Transport-Security" in dict(headers) and dict(headers)["Server"] == "nginx"


def test_the_access_log_keeps_no_query_string(stack):
    port, _, _, nginx = stack
    call(port, None, path="/?op=login&phone=18005551234&appid=a&otp=424242", method="POST")
    time.sleep(0.2)
    log = nginx.access_log()
    assert "POST / HTTP/1.1" in log and "424242" not in log and "otp" not in log


def test_health_checks_are_rate_limited_per_address(stack):
    port = stack[0]
    statuses = [call(port, None, path="/readyz", method="GET")[0] for _ in range(40)]
    assert statuses.count(200) >= 10 and 429 in statuses
    assert call(port, None, path="/healthz", method="GET", source="127.0.0.7")[0] == 200  # others unaffected


@pytest.mark.fault
def test_a_flood_of_slow_connections_from_one_address_leaves_others_logging_in(stack, capsys):
    """1,600 slow connections from one address - bodies trickled a byte every 3 s, or half a request
    head - to every path, reconnecting as soon as nginx closes them: other clients log in normally.
    (nginx with worker_connections 4096, as README, "Behind nginx", asks of the main nginx.conf.)"""
    port, service, fake, _ = stack
    attacker = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tools" / "slow_clients.py"),
            "--port",
            str(port),
            "--source",
            "127.0.0.66",
            "--connections",
            "1600",
            "--seconds",
            "16",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(4)  # every slow connection opened, the first ones already refused and back again
        timings = []
        for n in range(5):
            source = f"127.0.1.{n + 10}"
            phone = f"1201555{n:04d}"
            login = {"op": "login", "phone": phone, "appid": "a"}
            started = time.monotonic()
            status, _, body = call(port, login, source=source)
            assert status == 200 and json.loads(body)["result"] == "OK", body
            code = re.search(rf"login code for {phone}: (\d+)", service.log()).group(1)
            status, _, body = call(port, {**login, "otp": code}, source=source)
            assert status == 200 and json.loads(body)["result"] == "OK", body
            assert call(port, None, path="/readyz", method="GET", source=source)[0] == 200
            timings.append(time.monotonic() - started)
            time.sleep(1)
        assert max(timings) < 3.0, timings
        out, _ = attacker.communicate(timeout=60)
    finally:
        if attacker.poll() is None:
            attacker.kill()
    tally = json.loads(out)
    assert tally["opened"] >= 1600 and tally["closed"] >= 1600  # nginx kept closing them; they kept coming
    with capsys.disabled():
        print(
            f"\nslow flood: {tally}; other clients' step 1 + step 2 + readyz took "
            f"{', '.join(f'{t:.2f}' for t in timings)} s"
        )


def test_nginx_answers_carry_the_services_cors_headers_when_it_is_down(stack):
    """A page on another origin must read nginx's envelope, not hit a CORS error: the preflight and
    the answer nginx makes while the service is down carry the same headers the service would."""
    port, service, _, _ = stack
    service.stop()
    origin = {"Origin": "https://web.example.org"}
    status, headers, body = call(port, {"op": "logout"}, headers=origin)
    headers = dict(headers)
    assert json.loads(body)["error"] == "INTERNAL"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type, X-Request-ID"
    assert headers["Access-Control-Expose-Headers"] == "X-Request-ID"


def test_nginx_honours_a_list_of_origins(tmp_path):
    """With the map filled in as its comment says, nginx reflects an allowed origin and no other."""
    backend = free_port()  # nothing listens: every API answer is nginx's own
    nginx = Nginx(
        tmp_path,
        backend,
        site_edit=lambda text: text.replace('default "*";', 'default "";\n    "https://web.example.org" $http_origin;'),
    )
    try:
        _, allowed, _ = call(nginx.port, {"op": "logout"}, headers={"Origin": "https://web.example.org"})
        _, other, _ = call(nginx.port, {"op": "logout"}, headers={"Origin": "https://evil.example"})
    finally:
        nginx.stop()
    assert dict(allowed)["Access-Control-Allow-Origin"] == "https://web.example.org"
    assert "Access-Control-Allow-Origin" not in dict(other) and dict(other)["Vary"] == "Origin"


def test_tls_is_mozillas_intermediate_profile(tmp_path):
    """The shipped TLS settings, served for real: TLS 1.2 with forward-secret AEAD suites and TLS
    1.3 only (CBC suites were accepted), no session tickets, HSTS for two years."""
    import ssl

    from tools.processes import throwaway_ca

    ca, cert, key = throwaway_ca(tmp_path)
    nginx = Nginx(tmp_path, free_port(), tls=(cert, key))

    def handshake(ciphers: str = "", version=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2):
        context = ssl.create_default_context(cafile=str(ca))
        context.minimum_version, context.maximum_version = version, maximum
        if ciphers:
            context.set_ciphers(ciphers)
        with (
            socket.create_connection(("127.0.0.1", nginx.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = tls.recv(4096).decode("latin-1")
            return tls.cipher()[0], tls.session is not None and tls.session.has_ticket, head

    try:
        cipher, ticket, head = handshake("ECDHE-ECDSA-AES128-GCM-SHA256")
        assert cipher == "ECDHE-ECDSA-AES128-GCM-SHA256" and not ticket
        assert "Strict-Transport-Security: max-age=63072000" in head
        for cbc in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA"):
            with pytest.raises(ssl.SSLError):
                handshake(cbc)
        assert handshake(version=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3)[0].startswith("TLS_")
    finally:
        nginx.stop()


def test_delivery_receipts_have_a_budget_of_their_own(tmp_path):
    """A provider posts several receipts per message from few addresses: through the shipped site,
    150 signed receipts in a row from one address all reach the service, where 150 API requests from
    one address meet the apps' flood guard (RATELIMIT, in the envelope, after its burst of 40)."""
    from helpers import WEBHOOK_SECRET

    from app.senders.webhook import sign, signing_key

    fake = FakeMesibo(APP_TOKEN)
    backend_port = free_port()
    service = Service(
        tmp_path,
        {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/receipts.db",
            "MESSENGER_SENDER_NAME": "webhook",
            "MESSENGER_SENDER_WEBHOOK_URL": "https://gateway.example/sms",
            "MESSENGER_SENDER_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MESSENGER_SERVER_TRUSTED_PROXIES": unit_environment()["MESSENGER_SERVER_TRUSTED_PROXIES"],
        },
        port=backend_port,
    )
    nginx = Nginx(tmp_path, backend_port)
    try:
        key, statuses = signing_key(WEBHOOK_SECRET), []
        for n in range(150):
            body = json.dumps({"message_id": f"msg_{n}", "status": "delivered"}).encode()
            stamp = int(time.time())
            headers = {
                "webhook-id": f"rcpt_{n}",
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(key, f"rcpt_{n}", stamp, body),
            }
            statuses.append(call(nginx.port, body, path="/receipts/webhook", headers=headers, source="127.0.0.9")[0])
        assert statuses == [204] * 150
        api = [json.loads(call(nginx.port, {"op": "nothing"}, source="127.0.0.9")[2]) for _ in range(150)]
        assert [answer["error"] for answer in api].count("RATELIMIT") >= 150 - 40 - 20
    finally:
        nginx.stop()
        service.stop()
        fake.stop()
