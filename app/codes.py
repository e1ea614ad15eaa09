"""One-time codes: make them, hash them, compare them. No Flask, no clock of its own."""

from __future__ import annotations

import hashlib
import hmac
import secrets


class Codes:
    """Codes of ``digits`` digits from the OS CSPRNG, kept only as HMAC-SHA256 digests.

    The digest binds the code to its address and appid, so a row copied to another
    address (or a leaked table) proves nothing.
    """

    def __init__(self, secret: bytes, *, digits: int = 6, ttl_seconds: int = 300, max_attempts: int = 5):
        if len(secret) < 16:
            raise ValueError("the code-hashing key must be at least 16 bytes")
        self._secret = secret
        self.digits = digits
        self.ttl_seconds = ttl_seconds
        self.max_attempts = max_attempts

    def new_code(self) -> str:
        return f"{secrets.randbelow(10**self.digits):0{self.digits}d}"

    def digest(self, address: str, appid: str, code: str) -> str:
        message = f"{address}\x00{appid}\x00{code}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def matches(self, stored_digest: str, address: str, appid: str, code: str) -> bool:
        """Constant-time comparison of a stored digest with the digest of an answer."""
        return hmac.compare_digest(stored_digest, self.digest(address, appid, code))
