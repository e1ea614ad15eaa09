"""One-time rows, mixed into SqlStore: the tokens the service minted (see app.tokens) - written with
the code that proved them, taken back by logout, erased with the account - and codes taken whole
(SAML's requests and hand-offs, app.auth.saml)."""

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

    def take_code(self, address: str, now: int, appid: str | None = None) -> tuple[str, str] | None:
        """Delete a live code row (of ``appid``, when given) and return its (appid, digest): single use,
        the first taker has it. None when there is none (never made, taken already, expired)."""
        where, params = ("address = ? AND expires_at > ?", [address, now])
        if appid is not None:
            where, params = where + " AND appid = ?", [*params, appid]
        with self._transaction() as cur:
            rows = self._exec(cur, f"DELETE FROM codes WHERE {where} RETURNING appid, digest", params).fetchall()
        return (rows[0][0], rows[0][1]) if rows else None
