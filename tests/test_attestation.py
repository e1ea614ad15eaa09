"""The CAPTCHA gate on step 1 (issue 22, item 3): Turnstile, hCaptcha and reCAPTCHA, against a local
stand-in of their ``siteverify`` endpoint that records what it received."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import PHONE, login, post, services_of

from app.config import load
from app.schema import ConfigError

SECRET = "0x4AAAAAAAsite-secret"  # noqa: S105 - the stand-in's secret
VERDICTS = {
    "good": {"success": True, "hostname": "app.example", "action": "login", "score": 0.9},
    "low-score": {"success": True, "hostname": "app.example", "action": "login", "score": 0.1},
    "other-host": {"success": True, "hostname": "evil.example", "action": "login", "score": 0.9},
    "other-action": {"success": True, "hostname": "app.example", "action": "signup", "score": 0.9},
    "refused": {"success": False, "error-codes": ["invalid-input-response"]},
    "used": {"success": False, "error-codes": ["timeout-or-duplicate"]},
}


class SiteVerify:
    """The providers' verify endpoint: a form POST in, the verdict for the token out (``slow`` waits
    past the gate's timeout, ``broken`` answers an HTML error page)."""

    def __init__(self, tls: tuple | None = None):
        self.received: list[dict[str, str]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                stand_in.received.append(form)
                token = form.get("response", "")
                if token == "slow":
                    time.sleep(3)
                if token == "broken" or form.get("secret") != SECRET:
                    body, status = b"<html>Internal Server Error</html>", 500
                else:
                    body = json.dumps(VERDICTS.get(token, VERDICTS["refused"])).encode()
                    status = 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:  # (certificate, key): HTTPS, as the providers answer
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/siteverify"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="siteverify")
def _siteverify():
    stand_in = SiteVerify()
    yield stand_in
    stand_in.stop()


@pytest.fixture(name="gated", params=["turnstile", "hcaptcha", "recaptcha"])
def _gated(request, make_app, siteverify):
    def make(**extra):
        return make_app(
            **{
                "attestation.provider": request.param,
                "attestation.secret": SECRET,
                "attestation.verify_url": siteverify.url,
                "attestation.timeout": 1.0,
                **extra,
            }
        )

    return make


def test_off_by_default_step_1_needs_no_token(client, outbox):
    assert login(client)["result"] == "OK" and len(outbox.outbox) == 1


def test_a_good_token_passes_and_the_provider_hears_the_client(gated, siteverify):
    app = gated()
    client, services = app.test_client(), services_of(app)
    assert login(client, attestation="good", ip="198.51.100.23")["result"] == "OK"
    assert len(services.sender.outbox) == 1
    assert siteverify.received == [{"secret": SECRET, "response": "good", "remoteip": "198.51.100.23"}]


@pytest.mark.parametrize("token", ["", "refused", "used", pytest.param("slow", marks=pytest.mark.slow), "broken"])
def test_a_missing_or_refused_token_sends_nothing_and_counts_nothing(gated, token):
    app = gated()
    client, services = app.test_client(), services_of(app)
    started = time.monotonic()
    answer = login(client, **({"attestation": token} if token else {}))
    assert answer["error"] == "BADATTESTATION"
    assert time.monotonic() - started < 1.0 + 1.0 + 0.5  # the provider's wait is bounded
    assert services.sender.outbox == []
    assert services.store.counters_of(*services.limits.keys_of_subject(PHONE)) == []
    events = services.store.events(event="refused")
    assert len(events) == 1 and events[0].detail.startswith("attestation")
    assert login(client, attestation="good")["result"] == "OK"  # nothing held against the phone


@pytest.mark.parametrize(
    ("config", "token"),
    [
        ({"attestation.hostnames": ["app.example"]}, "other-host"),
        ({"attestation.actions": ["login"]}, "other-action"),
        ({"attestation.min_score": 0.5}, "low-score"),
    ],
)
def test_the_verdict_must_fit_the_site(gated, config, token):
    client = gated(**config).test_client()
    assert login(client, attestation=token)["error"] == "BADATTESTATION"
    assert login(client, attestation="good")["result"] == "OK"


def test_test_numbers_and_proofs_pass_without_a_token(gated, siteverify, mesibo_api):
    from helpers import mint_ok

    mint_ok(mesibo_api)
    client = gated(**{"phones.test_numbers": {"15550001111": "424242"}}).test_client()
    assert login(client, phone="15550001111")["result"] == "OK"
    assert login(client, phone="15550001111", otp="424242")["result"] == "OK"
    assert siteverify.received == []


def test_deleting_the_account_is_gated_too(gated):
    app = gated()
    client = app.test_client()
    body = {"op": "deleteaccount", "appid": "com.example", "phone": PHONE}
    assert post(client, body)["error"] == "BADATTESTATION"
    assert post(client, {**body, "attestation": "good"})["result"] == "OK"


def test_a_provider_without_its_secret_stops_start_up():
    with pytest.raises(ConfigError) as caught:
        from app import create_app

        create_app({"server.development": "true", "attestation.provider": "turnstile"}, environ={})
    assert caught.value.key == "attestation.secret"
    assert (
        load(
            {
                "MESSENGER_SERVER_DEVELOPMENT": "true",
                "MESSENGER_ATTESTATION_PROVIDER": "turnstile",
                "MESSENGER_ATTESTATION_SECRET": SECRET,
            }
        ).attestation.provider
        == "turnstile"
    )


def test_a_provider_behind_a_private_ca_is_trusted_with_its_ca_file(make_app, tmp_path):
    """attestation.ca_file, as mesibo.ca_file and sender.ca_file: a verifier whose certificate a CA of
    its own signs (a TLS-inspecting proxy, an on-premise verifier) is trusted with it, and not without."""
    from tools.processes import throwaway_ca

    ca, cert, key = throwaway_ca(tmp_path)
    stand_in = SiteVerify(tls=(cert, key))
    config = {
        "attestation.provider": "turnstile",
        "attestation.secret": SECRET,
        "attestation.verify_url": stand_in.url,
        "attestation.timeout": 1.0,
    }
    try:
        trusted = login(make_app(**config, **{"attestation.ca_file": str(ca)}).test_client(), attestation="good")
        untrusted = login(make_app(**config).test_client(), attestation="good")
    finally:
        stand_in.stop()
    assert trusted["result"] == "OK", trusted
    assert untrusted["error"] == "BADATTESTATION"
    assert len(stand_in.received) == 1  # the untrusted one never got past the handshake
