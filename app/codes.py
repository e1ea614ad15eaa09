"""One-time codes: make them, hash them, compare them. No Flask, no clock of its own."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import logging
import os
import secrets

from .schema import ConfigError, between, setting

logger = logging.getLogger("app.codes")


@dataclasses.dataclass(frozen=True)
class OtpSettings:
    """One-time codes."""

    secret: str = setting(
        "",
        "Key for hashing codes (HMAC-SHA256). Generated and kept next to a SQLite database when empty.",
        env=["OTP_SECRET"],
        secret=True,
    )
    digits: int = setting(6, "Digits in a code (4-10).", check=between(4, 10))
    ttl_seconds: int = setting(300, "Lifetime of a code, in seconds (at most 10 minutes).", check=between(30, 600))
    max_attempts: int = setting(5, "Wrong answers allowed per code; then the code is dead.", check=between(1, 10))


class Codes:
    """Codes of ``digits`` digits from the OS CSPRNG, kept only as HMAC-SHA256 digests.

    The digest binds the code to its address and appid, so a row copied to another
    address (or a leaked table) proves nothing.
    """

    def __init__(self, secret: bytes, settings: OtpSettings):
        if len(secret) < 16:
            raise ValueError("the code-hashing key must be at least 16 bytes")
        self._secret = secret
        self._blinding = hmac.new(secret, b"messenger-backend store keys", hashlib.sha256).digest()
        # a request asks for the same address's hash several times (its code, each rule's key)
        self.blind = functools.lru_cache(maxsize=4096)(self._blind)
        self.digits = settings.digits
        self.ttl_seconds = settings.ttl_seconds
        self.max_attempts = settings.max_attempts

    def _blind(self, address: str) -> str:
        """What the store keeps instead of a phone, an e-mail address or a user id - in the codes'
        rows and the limits' counter keys: a keyed hash (whoever has the database but not the key
        cannot list the users; the support commands hash what they are given)."""
        return hmac.new(self._blinding, address.encode(), hashlib.sha256).hexdigest()[:32]

    def new_code(self) -> str:
        return f"{secrets.randbelow(10**self.digits):0{self.digits}d}"

    def digest(self, address: str, appid: str, code: str) -> str:
        message = f"{address}\x00{appid}\x00{code}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def matches(self, stored_digest: str, address: str, appid: str, code: str) -> bool:
        """Constant-time comparison of a stored digest with the digest of an answer."""
        return hmac.compare_digest(stored_digest, self.digest(address, appid, code))


def hashing_key(configured: str, database_url: str) -> bytes:
    """The code-hashing key: the configured one, or (development on SQLite, as the start-up gate
    allows) one generated once and kept beside the database file."""
    if configured:
        return configured.encode()
    path = os.path.abspath(database_url[len("sqlite:///") :]) + ".otp-key"
    try:
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            with open(path, encoding="ascii") as handle:
                return handle.read().strip().encode()
    except OSError as exc:
        raise ConfigError(
            "otp.secret", f"is not set, and a generated key cannot be kept at {path}: {exc.strerror} (set OTP_SECRET)"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        key = secrets.token_hex(32)
        handle.write(key + "\n")
    logger.warning("generated a code-hashing key in %s (set OTP_SECRET in production)", path)
    return key.encode()
