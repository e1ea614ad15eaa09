"""Play Integrity as the step-1 gate (issue 22, item 3), against a local stand-in of Google's OAuth
token endpoint and of ``decodeIntegrityToken``: the stand-in checks the service account's signed
JWT with the account's public key and the access token it handed out, and answers the verdict the
test made for each integrity token."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import PHONE, FakeClock, login, post, services_of

from app.play_integrity import request_hash
from app.schema import ConfigError

PACKAGE = "com.example.chat"
ACCESS = "ya29.stand-in-access-token"


NOW = FakeClock().now  # the service's clock in these tests (not the machine's)


def verdict(phone: str = PHONE, **changes) -> dict:
    """A verdict as Google decodes a standard request's token (tokenPayloadExternal), made at NOW."""
    payload = {
        "requestDetails": {
            "requestPackageName": PACKAGE,
            "requestHash": request_hash(phone),
            "timestampMillis": str(int(NOW * 1000)),
        },
        "appIntegrity": {
            "appRecognitionVerdict": "PLAY_RECOGNIZED",
            "packageName": PACKAGE,
            "certificateSha256Digest": ["6a6a1474b5cbbb2b1aa57e0bc3"],
            "versionCode": "42",
        },
        "deviceIntegrity": {"deviceRecognitionVerdict": ["MEETS_DEVICE_INTEGRITY"]},
        "accountDetails": {"appLicensingVerdict": "LICENSED"},
    }
    for path, value in changes.items():
        section, _, name = path.partition("__")
        payload[section][name] = value
    return payload


class Google:
    """The token endpoint and decodeIntegrityToken, on one local port."""

    def __init__(self, public_key, verdicts: dict[str, dict]):
        self.verdicts = verdicts
        self.token_calls = 0
        self.decoded: list[str] = []
        google = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/token":
                    status, answer = google.token(dict(urllib.parse.parse_qsl(body.decode())))
                else:
                    status, answer = google.decode(self.path, self.headers.get("Authorization", ""), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.public_key = public_key
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        self.token_calls += 1
        try:
            claims = jwt.decode(
                form.get("assertion", ""), self.public_key, algorithms=["RS256"], audience=f"{self.base}/token"
            )
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant"}
        grant = form.get("grant_type")
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or "playintegrity" not in claims["scope"]:
            return 400, {"error": "invalid_request"}
        return 200, {"access_token": ACCESS, "expires_in": 3599, "token_type": "Bearer"}

    def decode(self, path: str, authorization: str, body: bytes) -> tuple[int, dict]:
        if authorization != f"Bearer {ACCESS}":
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}}
        if path != f"/v1/{PACKAGE}:decodeIntegrityToken":
            return 404, {"error": {"code": 404}}
        token = json.loads(body).get("integrityToken", "")
        self.decoded.append(token)
        if token == "broken":
            return 500, {"error": {"code": 500}}
        if token not in self.verdicts:
            return 400, {"error": {"code": 400, "message": "Integrity token cannot be decoded."}}
        return 200, {"tokenPayloadExternal": self.verdicts[token]}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="google")
def _google(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stand_in = Google(key.public_key(), {})
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "chat",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "integrity@chat.iam.gserviceaccount.com",
        "token_uri": f"{stand_in.base}/token",
    }
    (tmp_path / "account.json").write_text(json.dumps(account))
    stand_in.account_file = str(tmp_path / "account.json")
    yield stand_in
    stand_in.stop()


@pytest.fixture(name="gated")
def _gated(make_app, google):
    def make(**extra):
        return make_app(
            **{
                "attestation.provider": "play_integrity",
                "attestation.package_name": PACKAGE,
                "attestation.service_account_file": google.account_file,
                "attestation.verify_url": f"{google.base}/v1/{PACKAGE}:decodeIntegrityToken",
                "attestation.timeout": 1.0,
                **extra,
            }
        )

    return make


def test_a_genuine_app_on_a_genuine_device_gets_its_code(gated, google):
    google.verdicts.update({"t1": verdict(), "t2": verdict(phone="+1 800 555 0000")})
    app = gated()
    client, services = app.test_client(), services_of(app)
    assert login(client, attestation="t1")["result"] == "OK"
    # the token is bound to the phone field as the app sent it
    assert login(client, phone="+1 800 555 0000", attestation="t2")["result"] == "OK"
    assert len(services.sender.outbox) == 2
    assert google.decoded == ["t1", "t2"]
    assert google.token_calls == 1  # the access token is kept for the next requests


@pytest.mark.parametrize(
    ("token", "made"),
    [
        ("other-app", verdict(requestDetails__requestPackageName="com.evil.clone")),
        ("other-phone", verdict(phone="18005559999")),  # fetched for another number: not spent on this one
        ("stale", verdict(requestDetails__timestampMillis=str(int((NOW - 3600) * 1000)))),
        ("sideloaded", verdict(appIntegrity__appRecognitionVerdict="UNRECOGNIZED_VERSION")),
        ("emulator", verdict(deviceIntegrity__deviceRecognitionVerdict=["MEETS_VIRTUAL_INTEGRITY"])),
        ("no-device", verdict(deviceIntegrity__deviceRecognitionVerdict=[])),
        ("undecodable", None),
        ("broken", None),
    ],
)
def test_a_verdict_that_does_not_vouch_for_this_request_sends_nothing(gated, google, token, made):
    if made is not None:
        google.verdicts[token] = made
    google.verdicts["good"] = verdict()
    app = gated()
    client, services = app.test_client(), services_of(app)
    assert login(client, attestation=token)["error"] == "BADATTESTATION"
    assert services.sender.outbox == []
    assert services.store.counters_of(*services.limits.keys_of_subject(PHONE)) == []
    refused = services.store.events(event="refused")
    assert len(refused) == 1 and refused[0].detail.startswith("attestation")
    assert login(client, attestation="good")["result"] == "OK"


def test_the_device_verdicts_are_the_operators_choice(gated, google):
    google.verdicts["emulator"] = verdict(deviceIntegrity__deviceRecognitionVerdict=["MEETS_VIRTUAL_INTEGRITY"])
    app = gated(**{"attestation.device_verdicts": ["MEETS_DEVICE_INTEGRITY", "MEETS_VIRTUAL_INTEGRITY"]})
    assert login(app.test_client(), attestation="emulator")["result"] == "OK"


def test_a_service_account_google_refuses_refuses_the_code(gated, google, tmp_path):
    google.verdicts["good"] = verdict()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = json.loads(Path(google.account_file).read_text())
    account["private_key"] = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    (tmp_path / "other.json").write_text(json.dumps(account))
    app = gated(**{"attestation.service_account_file": str(tmp_path / "other.json")})
    answer = login(app.test_client(), attestation="good")
    assert answer["error"] == "BADATTESTATION" and services_of(app).sender.outbox == []


def test_deleting_the_account_is_gated_too(gated, google):
    google.verdicts["good"] = verdict()
    client = gated().test_client()
    body = {"op": "deleteaccount", "appid": "com.example", "phone": PHONE}
    assert post(client, body)["error"] == "BADATTESTATION"
    assert post(client, {**body, "attestation": "good"})["result"] == "OK"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"attestation.package_name": ""}, "attestation.package_name"),
        ({"attestation.service_account_file": ""}, "attestation.service_account_file"),
        ({"attestation.service_account_file": "/nonexistent/account.json"}, "attestation.service_account_file"),
    ],
)
def test_a_play_integrity_gate_without_what_it_needs_stops_start_up(gated, extra, key):
    with pytest.raises(ConfigError, match=key):
        gated(**extra)
