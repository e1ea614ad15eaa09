"""The tokens the service minted (see app.tokens), mixed into SqlStore: written with the code that
proved them, taken back by logout, erased with the account."""

from __future__ import annotations

from typing import Any

from .queries import Queries
from .records import TokenRecord

REMEMBER = (
    "INSERT INTO tokens (key, owner, sealed, appid, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)


class TokenQueries(Queries):
    """Mixed into SqlStore (see Queries)."""

    def _remember(self, cur: Any, minted: TokenRecord | None) -> None:
        if minted is not None:
            self._exec(cur, REMEMBER, (minted.key, minted.owner, minted.sealed, minted.appid, minted.expires_at))

    def remember_token(self, minted: TokenRecord) -> None:
        """Keep a minted token's row (a login without a single-use proof; the others write it in
        ``consume``'s transaction)."""
        with self._transaction() as cur:
            self._remember(cur, minted)

    def take_token(self, key: str, now: int) -> tuple[str, str] | None:
        """Delete the row of a token (logout) and return its (sealed address, appid); None when there is
        none (never minted here, expired, or taken already)."""
        with self._transaction() as cur:
            rows = self._exec(
                cur, "DELETE FROM tokens WHERE key = ? RETURNING sealed, appid, expires_at", (key,)
            ).fetchall()
        return (rows[0][0], rows[0][1]) if rows and rows[0][2] > now else None
