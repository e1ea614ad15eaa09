"""Apple's App Attest as the step-1 gate (``attestation.provider = "app_attest"``), verified here.

A login is rare for an install (its token lives a year), so the app attests a fresh key for each
step 1 rather than keeping one for assertions:

1. Step 1 without ``attestation`` answers ``BADATTESTATION`` with a ``challenge``: made by the
   service, valid ``attestation.max_age_seconds``, good for one use (self-authenticating, so it costs
   nothing to hand out; its one use is counted by the store when it is spent).
2. The app generates a key (``DCAppAttestService.generateKey``) and attests it with
   ``clientDataHash`` = SHA-256 of ``challenge + "\\n" + phone`` (the ``phone`` field exactly as it
   will send it), then repeats step 1 with ``attestation`` = ``<challenge>.<keyId>.<attestation>``
   (the key id and the attestation object in standard base64, as the API hands them out).
3. The service checks what Apple's documentation lists: the certificate chain up to Apple's App
   Attestation root (``attestation.apple_root_file``, downloaded from Apple), the nonce in the
   credential certificate (OID 1.2.840.113635.100.8.2) against SHA-256(authData || clientDataHash),
   the key id against the certificate's public key, the RP id hash against ``attestation.apple_app_id``
   (``TEAMID.bundle.id``), a counter of 0, the AAGUID of ``attestation.apple_environment`` and the
   credential id; then spends the challenge.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .schema import ConfigError

NONCE_OID = x509.ObjectIdentifier("1.2.840.113635.100.8.2")
AAGUIDS = {"production": b"appattest" + b"\0" * 7, "development": b"appattestdevelop"}


class Challenges:
    """One-use challenges: 16 random bytes, the expiry and a MAC under the service's key, base64url.
    ``check`` proves one was made here and is still valid; its single use is the caller's to count
    (``key``)."""

    def __init__(self, key: bytes, ttl: int):
        self._key = hmac.new(key, b"messenger-backend app attest challenge", hashlib.sha256).digest()
        self.ttl = ttl

    def issue(self, now: float) -> str:
        body = os.urandom(16) + struct.pack(">Q", int(now) + self.ttl)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode().rstrip("=")

    def check(self, challenge: str, now: float) -> str | None:
        """Why ``challenge`` is no good (None: it was made here and has not expired)."""
        try:
            raw = base64.urlsafe_b64decode(challenge + "=" * (-len(challenge) % 4))
        except (binascii.Error, ValueError):
            return "the challenge is not one of ours"
        if len(raw) != 40 or not hmac.compare_digest(raw[24:], self._mac(raw[:24])):
            return "the challenge is not one of ours"
        if struct.unpack(">Q", raw[16:24])[0] < now:
            return "the challenge has expired"
        return None

    @staticmethod
    def key(challenge: str) -> str:
        """The counter that spends a challenge."""
        return "attest-challenge:" + hashlib.sha256(challenge.encode()).hexdigest()[:32]

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]


def client_data_hash(challenge: str, phone_field: str) -> bytes:
    """What the app attests its key with: SHA-256 of the challenge, a newline and the phone field."""
    return hashlib.sha256(f"{challenge}\n{phone_field}".encode()).digest()


class AppAttest:
    def __init__(self, settings: Any):
        try:
            import cbor2
        except ImportError:
            raise ConfigError(
                "attestation.provider",
                "app_attest needs the appattest extra: pip install 'messenger-backend[appattest]'",
            ) from None
        self._cbor = cbor2
        if not settings.apple_app_id or "." not in settings.apple_app_id:
            raise ConfigError("attestation.apple_app_id", "is required by app_attest: TEAMID.bundle.id")
        self.rp_id_hash = hashlib.sha256(settings.apple_app_id.encode()).digest()
        self.aaguid = AAGUIDS[settings.apple_environment]
        self.root = _root(settings.apple_root_file)

    def problem(self, token: str, phone_field: str, challenges: Challenges, now: float) -> tuple[str, str | None]:
        """(the challenge the token names, why it does not vouch for this request - None: it does)."""
        challenge, _, rest = token.partition(".")
        key_text, _, attestation_text = rest.partition(".")
        why = challenges.check(challenge, now) if key_text and attestation_text else "not challenge.keyId.attestation"
        if why:
            return challenge, why
        try:
            key_id = base64.b64decode(key_text, validate=True)
            decoded = self._cbor.loads(base64.b64decode(attestation_text, validate=True))
        except Exception:  # noqa: BLE001 - untrusted bytes: whatever the decoder trips on (depth, size) is a refusal
            return challenge, "not base64 / CBOR"
        return challenge, self._attestation(decoded, key_id, client_data_hash(challenge, phone_field), now)

    def _attestation(self, decoded: Any, key_id: bytes, client_hash: bytes, now: float) -> str | None:
        if not isinstance(decoded, dict) or decoded.get("fmt") != "apple-appattest":
            return "not an App Attest attestation object"
        statement, auth_data = decoded.get("attStmt"), decoded.get("authData")
        chain = statement.get("x5c") if isinstance(statement, dict) else None
        if (
            not isinstance(auth_data, bytes)
            or not isinstance(chain, list)
            or not all(isinstance(der, bytes) for der in chain)
        ):
            return "not an App Attest attestation object"
        try:
            certificates = [x509.load_der_x509_certificate(der) for der in chain]
        except (TypeError, ValueError):
            return "a certificate of x5c cannot be read"
        why = _chain_problem(certificates, self.root, now)
        if why:
            return why
        credential = certificates[0]
        nonce = hashlib.sha256(auth_data + client_hash).digest()
        try:
            extension = credential.extensions.get_extension_for_oid(NONCE_OID).value
        except x509.ExtensionNotFound:
            return "the credential certificate has no nonce"
        # DER: SEQUENCE { [1] { OCTET STRING (32 bytes) } } - exactly this, nothing else
        if not isinstance(extension, x509.UnrecognizedExtension) or not hmac.compare_digest(
            extension.value, b"\x30\x24\xa1\x22\x04\x20" + nonce
        ):
            return "made for another challenge or number (nonce)"
        public_key = credential.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            return "the credential key is not an EC key"
        point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        if not hmac.compare_digest(hashlib.sha256(point).digest(), key_id):
            return "the key id is not the attested key's"
        return self._auth_data(auth_data, key_id)

    def _auth_data(self, auth_data: bytes, key_id: bytes) -> str | None:
        """rpIdHash (32) | flags (1) | counter (4) | aaguid (16) | credentialId length (2) | credentialId"""
        if len(auth_data) < 55:
            return "the authenticator data is too short"
        if not hmac.compare_digest(auth_data[:32], self.rp_id_hash):
            return "made for another app (RP id)"
        if struct.unpack(">I", auth_data[33:37])[0] != 0:
            return "not a new key (counter)"
        if auth_data[37:53] != self.aaguid:
            return "made in another environment (aaguid)"
        length = struct.unpack(">H", auth_data[53:55])[0]
        if not hmac.compare_digest(auth_data[55 : 55 + length], key_id):
            return "the credential id is not the key id"
        return None


def _chain_problem(certificates: list[x509.Certificate], root: x509.Certificate, now: float) -> str | None:
    """Whether credential <- intermediate(s) <- root hold: each signed by the next, each valid now,
    every issuer a CA."""
    if not 2 <= len(certificates) <= 4:
        return "x5c does not hold the credential and intermediate certificates"
    when = datetime.fromtimestamp(now, UTC)
    path = [*certificates, root]
    for child, issuer in zip(path, path[1:], strict=False):
        try:
            child.verify_directly_issued_by(issuer)
            constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
            return "the certificate chain does not lead to Apple's App Attestation root"
        if not constraints.ca:
            return "the certificate chain does not lead to Apple's App Attestation root"
    for certificate in path:
        if not certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
            return "a certificate of the chain is not valid now"
    return None


def _root(path: str) -> x509.Certificate:
    if not path:
        raise ConfigError(
            "attestation.apple_root_file",
            "is required by app_attest: Apple's App Attestation "
            "root (https://www.apple.com/certificateauthority/Apple_App_Attestation_Root_CA.pem)",
        )
    try:
        with open(path, "rb") as handle:
            return x509.load_pem_x509_certificate(handle.read())
    except OSError as exc:
        raise ConfigError("attestation.apple_root_file", f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError("attestation.apple_root_file", f"{path} is not a PEM certificate") from None
