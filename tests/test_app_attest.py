"""Apple App Attest as the step-1 gate (issue 22, item 3), verified locally with real cryptography: the
test makes a root standing in for Apple's App Attestation root, an intermediate, and for each
attestation a device key and its credential certificate carrying the nonce, as Apple's servers do."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import struct

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import ENGINES, PHONE, FakeClock, engine_config, login, post, services_of

from app.app_attest import AAGUIDS, NONCE_OID, client_data_hash
from app.schema import ConfigError

APP_ID = "ABCDE12345.com.example.chat"
NOW = dt.datetime.fromtimestamp(FakeClock().now, dt.UTC)


def certificate(subject: str, key, issuer_name: str, issuer_key, *, ca: bool, extensions=(), days=(-1, 365)):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=days[0]))
        .not_valid_after(NOW + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA384() if ca else hashes.SHA256())


class Apple:
    """Apple's side: a root, an intermediate, and attestations of device keys."""

    def __init__(self):
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = certificate(
            "Apple App Attestation Root CA", self.root_key, "Apple App Attestation Root CA", self.root_key, ca=True
        )
        self.ca_key = ec.generate_private_key(ec.SECP384R1())
        self.ca = certificate(
            "Apple App Attestation CA 1", self.ca_key, "Apple App Attestation Root CA", self.root_key, ca=True
        )

    def attest(self, challenge: str, phone: str, **knobs) -> str:
        """What the app sends as ``attestation`` for a fresh key; ``knobs`` break one thing each."""
        device_key = ec.generate_private_key(ec.SECP256R1())
        point = device_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        key_id = hashlib.sha256(point).digest()
        auth_data = (
            hashlib.sha256(knobs.get("app_id", APP_ID).encode()).digest()
            + b"\x40"
            + struct.pack(">I", knobs.get("counter", 0))
            + knobs.get("aaguid", AAGUIDS["production"])
            + struct.pack(">H", 32)
            + knobs.get("credential_id", key_id)
            + cbor2.dumps({1: 2, 3: -7})  # the COSE key (not read by the service)
        )
        attested = client_data_hash(challenge, knobs.get("phone_attested", phone))
        nonce = hashlib.sha256(auth_data + attested).digest()
        nonce_extension = x509.UnrecognizedExtension(NONCE_OID, b"\x30\x24\xa1\x22\x04\x20" + nonce)
        issuer_key, issuer = knobs.get("issuer", (self.ca_key, self.ca))
        credential = certificate(
            key_id.hex(),
            device_key,
            "Apple App Attestation CA 1",
            issuer_key,
            ca=False,
            extensions=[nonce_extension],
            days=knobs.get("days", (-1, 3)),
        )
        chain = [credential.public_bytes(serialization.Encoding.DER), issuer.public_bytes(serialization.Encoding.DER)]
        attestation = cbor2.dumps(
            {"fmt": "apple-appattest", "attStmt": {"x5c": chain, "receipt": b"receipt"}, "authData": auth_data}
        )
        sent_key_id = knobs.get("key_id", key_id)
        return f"{challenge}.{base64.b64encode(sent_key_id).decode()}.{base64.b64encode(attestation).decode()}"


@pytest.fixture(name="apple", scope="module")
def _apple():
    return Apple()


@pytest.fixture(name="gated")
def _gated(make_app, apple, tmp_path):
    (tmp_path / "apple-root.pem").write_bytes(apple.root.public_bytes(serialization.Encoding.PEM))

    def make(**extra):
        return make_app(
            **{
                "attestation.provider": "app_attest",
                "attestation.apple_app_id": APP_ID,
                "attestation.apple_root_file": str(tmp_path / "apple-root.pem"),
                **extra,
            }
        )

    return make


def challenge_of(client, phone=PHONE) -> str:
    answer = login(client, phone=phone)
    assert answer["result"] == "FAIL" and answer["error"] == "BADATTESTATION" and answer["op"] == "login"
    return answer["challenge"]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_attested_app_gets_its_code_once_per_challenge(gated, apple, engine):
    with engine_config(engine, "attest") as store:
        app = gated(**store)
        attested_once_per_challenge(app, apple)
        services_of(app).store.close()


def attested_once_per_challenge(app, apple):
    client, services = app.test_client(), services_of(app)
    challenge = challenge_of(client)  # step 1 without attestation: the service's challenge
    token = apple.attest(challenge, PHONE)
    assert login(client, attestation=token)["result"] == "OK"
    assert len(services.sender.outbox) == 1
    replayed = login(client, attestation=token)  # the same attestation again: its challenge is spent
    assert replayed["error"] == "BADATTESTATION" and replayed["challenge"] != challenge
    assert len(services.sender.outbox) == 1
    # the phone field as sent is what the attestation covers
    other = challenge_of(client, phone="+1 800 555 0000")
    assert login(client, phone="+1 800 555 0000", attestation=apple.attest(other, "+1 800 555 0000"))["result"] == "OK"


NESTED = base64.b64encode(b"\x81" * 3000 + b"\x00").decode()  # 3,000 CBOR arrays, each holding the next
WHY = {
    "another root": "the certificate chain does not lead to Apple's App Attestation root",
    "another number": "made for another challenge or number (nonce)",
    "another key id": "the key id is not the attested key's",
    "another app": "made for another app (RP id)",
    "counter": "not a new key (counter)",
    "development build": "made in another environment (aaguid)",
    "credential id": "the credential id is not the key id",
    "expired certificate": "a certificate of the chain is not valid now",
    "garbage": "not base64 / CBOR",
    "deeply nested": "not base64 / CBOR",  # 3,000 arrays in arrays: the decoder's recursion, not a 500
}


@pytest.mark.parametrize(
    "broken",
    [
        "another root",
        "another number",
        "another key id",
        "another app",
        "counter",
        "development build",
        "credential id",
        "expired certificate",
        "garbage",
        "deeply nested",
    ],
)
def test_an_attestation_that_does_not_vouch_for_this_request_sends_nothing(gated, apple, broken):
    app = gated()
    client, services = app.test_client(), services_of(app)
    challenge = challenge_of(client)
    impostor_key = ec.generate_private_key(ec.SECP384R1())
    impostor = certificate(
        "Apple App Attestation CA 1", impostor_key, "Apple App Attestation Root CA", impostor_key, ca=True
    )
    token = {
        "another root": lambda: apple.attest(challenge, PHONE, issuer=(impostor_key, impostor)),
        "another number": lambda: apple.attest(challenge, PHONE, phone_attested="18005559999"),
        "another key id": lambda: apple.attest(challenge, PHONE, key_id=b"\x01" * 32),
        "another app": lambda: apple.attest(challenge, PHONE, app_id="ZZZZZ99999.com.evil.clone"),
        "counter": lambda: apple.attest(challenge, PHONE, counter=3),
        "development build": lambda: apple.attest(challenge, PHONE, aaguid=AAGUIDS["development"]),
        "credential id": lambda: apple.attest(challenge, PHONE, credential_id=b"\x02" * 32),
        "expired certificate": lambda: apple.attest(challenge, PHONE, days=(-30, -1)),
        "garbage": lambda: f"{challenge}.AAAA.bm90IGNib3I=",
        "deeply nested": lambda: f"{challenge}.AAAA.{NESTED}",
    }[broken]()
    answer = login(client, attestation=token)
    assert answer["error"] == "BADATTESTATION" and answer["challenge"]
    assert services.sender.outbox == []
    assert services.store.counters_of(*services.limits.keys_of_subject(PHONE)) == []
    refused = services.store.events(event="refused")[0]  # the newest (the first was: no token)
    assert refused.detail == f"attestation: {WHY[broken]}"
    assert login(client, attestation=apple.attest(challenge, PHONE))["result"] == "OK"  # the challenge is unspent


def test_challenges_are_the_services_own_and_expire(gated, apple, clock):
    app = gated(**{"attestation.max_age_seconds": 60})
    client = app.test_client()
    challenge = challenge_of(client)
    forged = base64.urlsafe_b64encode(b"\0" * 40).decode().rstrip("=")
    assert login(client, attestation=apple.attest(forged, PHONE))["error"] == "BADATTESTATION"
    clock.advance(61)
    assert login(client, attestation=apple.attest(challenge, PHONE))["error"] == "BADATTESTATION"
    assert login(client, attestation=apple.attest(challenge_of(client), PHONE))["result"] == "OK"


def test_a_development_build_passes_in_the_development_environment(gated, apple):
    client = gated(**{"attestation.apple_environment": "development"}).test_client()
    token = apple.attest(challenge_of(client), PHONE, aaguid=AAGUIDS["development"])
    assert login(client, attestation=token)["result"] == "OK"


def test_deleting_the_account_is_gated_too(gated, apple):
    client = gated().test_client()
    body = {"op": "deleteaccount", "appid": "com.example", "phone": PHONE}
    refused = post(client, body)
    assert refused["error"] == "BADATTESTATION" and refused["op"] == "deleteaccount"
    assert post(client, {**body, "attestation": apple.attest(refused["challenge"], PHONE)})["result"] == "OK"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"attestation.apple_app_id": ""}, "attestation.apple_app_id"),
        ({"attestation.apple_root_file": ""}, "attestation.apple_root_file"),
        ({"attestation.apple_root_file": "/nonexistent/root.pem"}, "attestation.apple_root_file"),
    ],
)
def test_an_app_attest_gate_without_what_it_needs_stops_start_up(gated, extra, key):
    with pytest.raises(ConfigError, match=key):
        gated(**extra)
