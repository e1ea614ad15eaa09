"""Every outbound client ends within its deadline - name resolution, connecting and every read
together - whatever the peer does: a directory or a mail server that trickles its answer one byte
at a time (a read timeout alone starts again with every byte), and a resolver that never answers
(a network namespace of the test's own whose only name server swallows every query)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import APPID, post, services_of

from app.senders import Message, SendError
from tools.processes import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.fault]


class Trickler:
    """A TCP server that answers every connection with ``head`` and then one byte every
    ``interval`` seconds, for ever - or until the client closes its end, which it records."""

    def __init__(self, head: bytes, interval: float = 0.2):
        self.head, self.interval = head, interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed_at: list[float] = []
        self.connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(self.head)
                while not self._stop.is_set():
                    time.sleep(self.interval)
                    conn.sendall(b"a")
            except OSError:  # the client closed its end: what the deadline must make it do
                self.closed_at.append(time.monotonic())

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()


@pytest.fixture(name="trickler")
def _trickler():
    made: list[Trickler] = []

    def make(head: bytes) -> Trickler:
        made.append(Trickler(head))
        return made[-1]

    yield make
    for server in made:
        server.stop()


def test_a_trickling_directory_costs_an_ldap_login_at_most_its_timeout(make_app, trickler):
    # an LDAP message (a BER sequence) that says it is 4 KiB long, then arrives a byte at a time
    directory = trickler(b"\x30\x82\x10\x00\x02\x01\x01")
    app = make_app(
        **{
            "auth.method": "ldap",
            "auth.ldap.url": f"ldap://127.0.0.1:{directory.port}",
            "auth.ldap.user_dn_template": "uid={user},dc=example,dc=org",
            "auth.ldap.timeout": 1.0,
        }
    )
    started = time.monotonic()
    answer = post(app.test_client(), {"op": "login", "appid": APPID, "user": "ann", "password": "pw"})
    took = time.monotonic() - started
    assert answer["result"] == "FAIL" and answer["error"] == "INTERNAL", answer
    assert took < 1.0 + 0.5, f"{took:.2f} s (ldap3's receive timeout alone held it 39-44 s)"
    # the connection is closed, not left to trickle on a thread nobody waits for
    deadline = time.monotonic() + 2
    while not directory.closed_at and time.monotonic() < deadline:
        time.sleep(0.05)
    assert directory.connections == 1 and directory.closed_at


def test_a_trickling_mail_server_costs_a_send_at_most_its_timeout(make_app, trickler):
    server = trickler(b"220")  # a greeting line that never ends
    app = make_app(
        **{
            "sender.name": "smtp",
            "sender.smtp.host": "127.0.0.1",
            "sender.smtp.port": server.port,
            "sender.smtp.security": "none",
            "sender.smtp.from_address": "codes@example.org",
            "sender.timeout": 1.0,
        }
    )
    sender = services_of(app).sender
    started = time.monotonic()
    with pytest.raises(SendError) as failure:
        sender.send(Message("ann@example.org", "123456", "your code: 123456", 0, 5, "email"))
    took = time.monotonic() - started
    assert failure.value.provider_code == "timeout"
    assert took < 1.0 + 0.5, f"{took:.2f} s (smtplib's timeout alone held it more than 55 s)"
    deadline = time.monotonic() + 2
    while not server.closed_at and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.closed_at


# -- a resolver that never answers -----------------------------------------------------------------

NO_DNS_SCRIPT = r"""
import json, socket, sys, threading, time
if sys.argv[1] == "gevent":
    from gevent import monkey
    monkey.patch_all()
sys.path.insert(0, sys.argv[2])

# the namespace's only name server: takes every query and never answers
silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
silent.bind(("127.0.0.1", 53))

from app import create_app
from app.senders import Message, SendError
from app.services import of

base = {"server.development": "false", "sender.name": "log", "mesibo.app_token": "tok-0123456789abcdef",
        "otp.secret": "s" * 32,
        "database.url": "sqlite:///" + sys.argv[3] + "/db.sqlite", "logging.requests": False,
        "mesibo.api_url": "http://mesibo.example.org/backend/", "mesibo.connect_timeout": 1.0,
        "mesibo.read_timeout": 1.0, "sender.timeout": 1.0}
cases = {
    "ldap": ({"auth.method": "ldap", "auth.ldap.url": "ldap://ldap.example.org",
              "auth.ldap.user_dn_template": "uid={user},dc=example,dc=org", "auth.ldap.timeout": 1.0},
             {"op": "login", "appid": "a", "user": "ann", "password": "pw"}),
    "radius": ({"auth.method": "radius", "auth.radius.servers": ["radius.example.org:1812"],
                "auth.radius.secret": "radius-secret", "auth.radius.timeout": 0.5, "auth.radius.retries": 0},
               {"op": "login", "appid": "a", "user": "ann", "password": "pw"}),
    "mesibo": ({"phones.test_numbers": {"12015550123": "123456"}},
               {"op": "login", "appid": "a", "phone": "12015550123", "otp": "123456"}),
    "webhook": ({"sender.name": "webhook", "sender.webhook.url": "http://hooks.example.org/sms",
                 "sender.webhook.secret": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"},
                {"op": "login", "appid": "a", "phone": "12015550199"}),
    "oidc": ({"auth.method": "oidc", "auth.oidc.issuer": "http://idp.example.org", "auth.oidc.audience": ["app"],
              "auth.oidc.timeout": 1.0},
             {"op": "login", "appid": "a", "id_token": None}),
}
found = {}
for name, (config, body) in cases.items():
    app = create_app({**base, **config}, environ={})
    if name == "oidc":  # a token naming a key the service must fetch
        import base64
        part = lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
        body["id_token"] = part({"alg": "RS256", "kid": "k1"}) + "." + part({"sub": "x"}) + ".c2ln"
    client = app.test_client()
    if "otp" in body:  # a test number's step 1 first (no SMS): then the proof goes to mesibo
        client.post("/", json={key: value for key, value in body.items() if key != "otp"})
    started = time.monotonic()
    answer = client.post("/", json=body).get_json()
    found[name] = {"seconds": time.monotonic() - started, "error": answer.get("error")}
app = create_app({**base, "sender.name": "smtp", "sender.smtp.host": "mail.example.org",
                  "sender.smtp.from_address": "codes@example.org"}, environ={})
started = time.monotonic()
try:
    of(app).sender.send(Message("ann@example.org", "1", "code 1", 0, 5, "email"))
    error = None
except SendError as exc:
    error = exc.provider_code
found["smtp"] = {"seconds": time.monotonic() - started, "error": error}
print(json.dumps(found))
"""

# what each case answers, and the most it may take: its timeouts, with room for a busy machine
NO_DNS_EXPECTED = {
    "ldap": ("INTERNAL", 1.0),
    "radius": ("INTERNAL", 0.5),
    "mesibo": ("BADAPP", 2.0),
    "webhook": ("SENDFAIL", 3.05 + 1.0),  # an HTTP sender's connect timeout is 3.05 s
    "oidc": ("BADTOKEN", 2.0),  # the key set cannot be fetched: an unknown key
    "smtp": ("timeout", 1.0),
}


def _namespace_works() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "-m", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.parametrize("model", ["threads", "gevent"])
def test_a_resolver_that_never_answers_costs_each_call_at_most_its_deadline(tmp_path, model):
    """getaddrinfo has no timeout: here it would wait 10 s (the resolver's own retries) per name."""
    if not _namespace_works():
        pytest.fail("this test needs root and unshare (a mount and network namespace of its own)")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
    script = tmp_path / "no_dns.py"
    script.write_text(NO_DNS_SCRIPT)
    inner = (
        f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
        f"exec {sys.executable} {script} {model} {ROOT} {tmp_path}"
    )
    run = subprocess.run(["unshare", "-m", "-n", "sh", "-c", inner], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    print(
        f"no DNS answer ({model}): "
        + ", ".join(f"{name} {case['error']} in {case['seconds']:.2f} s" for name, case in found.items())
    )
    for name, (error, seconds) in NO_DNS_EXPECTED.items():
        assert found[name]["error"] == error, (name, found[name])
        assert found[name]["seconds"] < seconds + 0.7, (name, found[name], textwrap.shorten(run.stderr, 2000))
