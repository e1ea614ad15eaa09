"""What the store keeps for operators: the audit trail of login events, the block and allow lists,
and the state of one phone or address for the support commands."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .queries import Queries
from .records import Rule
from .sql import BUMP_GENERATION, GENERATION_KEY


class EventName(StrEnum):
    """The events a login leaves, in the order they happen: the one list of their names (what the
    trail stores, what ``events --result`` takes, what the README lists)."""

    ASKED = "asked"  # a code was asked for
    SENT = "sent"  # detail: the sender and the provider's message id
    SEND_FAILED = "send_failed"  # detail: the sender and the provider's error
    REFUSED = "refused"  # a limit or the block list; detail: which, and retry_after
    WRONG = "wrong"  # a wrong code or password
    PROVED = "proved"
    MINTED = "minted"  # mesibo minted the user's token
    MESIBO_ERROR = "mesibo_error"  # mesibo did not mint; detail: its error
    REVOKED = "revoked"  # a minted token was revoked (the code could not be marked used)
    DELETED = "deleted"  # an account was deleted (deleteaccount): kept without who or from where
    QUARANTINED = "quarantined"  # this send quarantined its prefix (SMS pumping); detail: the prefix
    DELIVERED = "delivered"  # the provider's receipt: the message arrived; detail: the provider
    UNDELIVERED = "undelivered"  # the provider's receipt: it did not; detail: the provider and its error


EVENTS = tuple(EventName)


@dataclass(frozen=True)
class Event:
    """One row of the audit trail. ``subject`` is a keyed hash of the address (for lookup) and
    ``shown`` a masked form of it (for display): never the address, a code or a token."""

    at: int
    subject: str
    shown: str
    event: str
    detail: str
    method: str
    appid: str
    client_ip: str
    request_id: str
    message_id: str = ""  # a sent code's, as its provider named the message


EVENT_COLUMNS = "at, subject, shown, event, detail, method, appid, client_ip, request_id, message_id"


class AuditQueries(Queries):
    """Mixed into SqlStore (see Queries)."""

    _hints: Any

    # -- the audit trail ------------------------------------------------------------------------

    def record(self, events: Sequence[Event], keep_seconds: int) -> None:
        """Write events in one transaction; they are purged ``keep_seconds`` later.

        One statement, the same for any number of rows (executemany): a multi-row INSERT per batch
        size made a prepared statement of its own for each size, and the connection's statement
        cache grew by megabytes per worker."""
        if not events:
            return
        params = []
        for e in events:
            # ids sort as the events happened (the time in ns first): the order within one request
            row_id = f"{time.time_ns():020d}{secrets.token_hex(4)}"
            params.append(
                (
                    row_id,
                    e.at,
                    e.at + keep_seconds,
                    e.subject,
                    e.shown,
                    e.event,
                    e.detail,
                    e.method,
                    e.appid,
                    e.client_ip,
                    e.request_id,
                    e.message_id,
                )
            )
        columns = "id, at, expires_at, " + EVENT_COLUMNS.replace("at, ", "", 1)
        with self._transaction() as cur:
            cur.executemany(
                self._sql(f"INSERT INTO events ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), params
            )

    def events(
        self,
        *,
        subject: str = "",
        client_ip: str = "",
        since: int = 0,
        event: str = "",
        limit: int = 50,
    ) -> list[Event]:
        """The newest events first, filtered by any of: subject, client address, time, event name."""
        where: list[str] = ["at >= ?"]
        params: list[Any] = [since]
        for column, value in (("subject", subject), ("client_ip", client_ip), ("event", event)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        with self._transaction() as cur:
            rows = self._exec(
                cur,
                f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY at DESC, id DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [Event(*row) for row in rows]

    def receipt(self, message_id: str, event: str, detail: str, now: int, keep_seconds: int) -> Event | None:
        """A provider's delivery receipt for ``message_id``: the event it makes, written for whom the
        message was sent to (found by the ``sent`` event that holds the id); None when no sent event
        holds it (another service's message, or the trail's row already purged)."""
        with self._transaction() as cur:
            rows = self._exec(
                cur,
                f"SELECT {EVENT_COLUMNS} FROM events WHERE message_id = ? AND event = 'sent' LIMIT 1",
                (message_id,),
            ).fetchall()
        if not rows:
            return None
        sent = Event(*rows[0])
        made = Event(now, sent.subject, sent.shown, event, detail[:200], sent.method, sent.appid, "", sent.request_id)
        self.record([made], keep_seconds)
        return made

    # -- block and allow lists ------------------------------------------------------------------

    def policy(self, address: str) -> str:
        """'block', 'allow' or '' for an address: the longest matching number or prefix decides."""
        with self._transaction() as cur:
            return self._policy(cur, address)

    def _policy(self, cur: Any, address: str) -> str:
        """``policy`` inside a transaction: one look-up by primary key of the address and each of its
        prefixes followed by ``*`` (at most 16 keys), so it costs the same whatever the lists hold."""
        candidates = [address]
        if address.isdigit():
            candidates += [address[:end] + "*" for end in range(1, min(len(address), 15) + 1)]
        marks = ", ".join("?" for _ in candidates)
        rows = self._exec(cur, f"SELECT pattern, kind FROM policy WHERE pattern IN ({marks})", candidates).fetchall()
        if not rows:
            return ""
        return max(rows, key=lambda row: len(row[0]))[1]

    def set_policy(self, pattern: str, kind: str, note: str, now: int) -> None:
        with self._transaction() as cur:
            self._exec(
                cur,
                """INSERT INTO policy (pattern, kind, note, added_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (pattern) DO UPDATE SET kind = excluded.kind, note = excluded.note,
                       added_at = excluded.added_at""",
                (pattern, kind, note, now),
            )

    def remove_policy(self, pattern: str) -> bool:
        with self._transaction() as cur:
            return self._exec(cur, "DELETE FROM policy WHERE pattern = ?", (pattern,)).rowcount > 0

    def policies(self, kind: str) -> list[tuple[str, str, int]]:
        """(pattern, note, added at) of one list, in pattern order."""
        with self._transaction() as cur:
            return self._exec(
                cur, "SELECT pattern, note, added_at FROM policy WHERE kind = ? ORDER BY pattern", (kind,)
            ).fetchall()

    # -- one phone or address, for support ------------------------------------------------------

    def codes_of(self, address: str) -> list[tuple[str, int, int, int]]:
        """(appid, expires at, attempts, claimed until) of the codes for an address."""
        with self._transaction() as cur:
            return self._exec(
                cur, "SELECT appid, expires_at, attempts, claimed_until FROM codes WHERE address = ?", (address,)
            ).fetchall()

    def counters_of(self, keys: Sequence[str], patterns: Sequence[str] = ()) -> list[tuple[str, int, int]]:
        """(key, count, window ends) of these counters and of those whose key is LIKE a pattern."""
        where = " OR ".join(["key = ?"] * len(keys) + ["key LIKE ?"] * len(patterns)) or "1 = 0"
        with self._transaction() as cur:
            return self._exec(
                cur, f"SELECT key, count, expires_at FROM counters WHERE {where} ORDER BY key", [*keys, *patterns]
            ).fetchall()

    def clear_counters(self, keys: Sequence[str], patterns: Sequence[str] = ()) -> list[str]:
        """Delete these counters (unblock), and void every process's refusal hints: each sees the
        change at its next request (RefusalHints)."""
        found = [key for key, _, _ in self.counters_of(keys, patterns)]
        with self._transaction() as cur:
            for key in found:
                self._exec(cur, "DELETE FROM counters WHERE key = ?", (key,))
            self._exec(cur, BUMP_GENERATION, (GENERATION_KEY, 2**62)).fetchall()
        self._generation_changed()
        self._hints.forget([Rule(key, 0, 0) for key in found])
        return found

    def erase(self, address: str, keys: Sequence[str], patterns: Sequence[str], subjects: Sequence[str]) -> int:
        """Forget an account, in one transaction: every code for ``address`` (its keyed hash; every
        app id and purpose) and every token minted for it, these counters and those whose key is LIKE
        a pattern, and the audit events of ``subjects``; then void every process's refusal hints (as
        ``clear_counters``).
        Returns how many rows went."""
        where = " OR ".join(["key = ?"] * len(keys) + ["key LIKE ?"] * len(patterns)) or "1 = 0"
        with self._transaction() as cur:
            gone = self._exec(cur, "DELETE FROM codes WHERE address = ?", (address,)).rowcount
            gone += self._exec(cur, "DELETE FROM tokens WHERE owner = ?", (address,)).rowcount
            gone += self._exec(cur, f"DELETE FROM counters WHERE {where}", [*keys, *patterns]).rowcount
            for subject in filter(None, subjects):
                gone += self._exec(cur, "DELETE FROM events WHERE subject = ?", (subject,)).rowcount
            self._exec(cur, BUMP_GENERATION, (GENERATION_KEY, 2**62)).fetchall()
        self._generation_changed()
        self._hints.forget([Rule(key, 0, 0) for key in keys])
        return gone

    def _generation(self, cur: Any = None) -> int:
        """How many times counters were cleared by hand (refusal hints from before are void); read
        with ``cur`` inside a transaction, or in a transaction of its own."""
        if cur is None:
            with self._transaction() as own:
                return self._generation(own)
        row = self._exec(cur, "SELECT count FROM counters WHERE key = ?", (GENERATION_KEY,)).fetchall()
        return row[0][0] if row else 0

    def _generation_changed(self) -> None:
        """An engine may tell its other processes more cheaply than _generation's read (SQLite)."""
