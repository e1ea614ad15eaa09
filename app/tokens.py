"""What logout needs to revoke a user token: whose it is.

mesibo removes a user's tokens by the user's address (``userset`` with ``user.token.remove``, as
mesibo's own PHP helper does it), but the apps log out with the token alone. So for each token it
mints the service keeps a row that names the user only to someone who holds the token: found by a
keyed hash of the token, the address sealed with AES-GCM under a key derived from the token and the
server key (``cryptography``, the library pyjwt's crypto extra already brings). A copy of the store,
a backup or an operator cannot tell whose token a row is; ``deleteaccount`` finds a user's rows by
the address's keyed hash (``owner``), as it finds the user's codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .store import TokenRecord


class MintedTokens:
    def __init__(self, key: bytes, blind: Callable[[str], str], lifetime_seconds: int):
        self._key = hmac.new(key, b"messenger-backend minted tokens", hashlib.sha256).digest()
        self.blind = blind
        self.lifetime_seconds = lifetime_seconds

    def _derive(self, label: bytes, token: str) -> bytes:
        return hmac.new(self._key, label + b"\x00" + token.encode(), hashlib.sha256).digest()

    def lookup(self, token: str) -> str:
        """The row's key: a keyed hash of the token."""
        return self._derive(b"lookup", token).hex()

    def record(self, token: str, address: str, appid: str, now: int) -> TokenRecord:
        """The row for a token just minted for ``address`` and ``appid``."""
        nonce = os.urandom(12)
        sealed = AESGCM(self._derive(b"seal", token)).encrypt(nonce, address.encode(), appid.encode())
        return TokenRecord(
            self.lookup(token),
            self.blind(address),
            base64.b64encode(nonce + sealed).decode(),
            appid,
            now + self.lifetime_seconds,
        )

    def owner(self, token: str, sealed: str, appid: str) -> str | None:
        """The address a row names, opened with the token (None: not this token's row, or tampered)."""
        try:
            raw = base64.b64decode(sealed)
            return AESGCM(self._derive(b"seal", token)).decrypt(raw[:12], raw[12:], appid.encode()).decode()
        except (InvalidTag, ValueError):
            return None
