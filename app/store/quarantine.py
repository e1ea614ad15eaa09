"""The automatic quarantine's counts (mixed into SqlStore): per destination prefix, the codes sent,
proved and - by the providers' delivery receipts - undelivered over a window, and the decision to
quarantine the prefix, taken in the transaction that counts a send or an undelivered message."""

from __future__ import annotations

from typing import Any

from .queries import Queries
from .records import Watch
from .sql import BUMP


class QuarantineQueries(Queries):
    """Mixed into SqlStore (see Queries)."""

    def _watch_send(self, cur: Any, watch: Watch, now: int) -> bool:
        """Count a send to a watched prefix; True when this send quarantined it."""
        sent = self._exec(cur, BUMP, (watch.sent_key, now + watch.window, now, now)).fetchall()[0][0]
        return self._judge(cur, watch, sent, now)

    def undelivered(self, watch: Watch, now: int) -> bool:
        """A provider said a message to this prefix never arrived: count it; True when that
        quarantined the prefix (too many of its messages undelivered)."""
        with self._transaction() as cur:
            self._exec(cur, BUMP, (watch.undelivered_key, now + watch.window, now, now)).fetchall()
            rows = self._exec(
                cur, "SELECT count FROM counters WHERE key = ? AND expires_at > ?", (watch.sent_key, now)
            ).fetchall()
            return self._judge(cur, watch, rows[0][0] if rows else 0, now)

    def _judge(self, cur: Any, watch: Watch, sent: int, now: int) -> bool:
        """Quarantine the prefix when at least ``min_sends`` went to it and too few were proved or too
        many undelivered; True when it did so now (not when it already was)."""
        if sent < watch.min_sends:
            return False
        counts = dict(
            self._exec(
                cur,
                "SELECT key, count FROM counters WHERE key IN (?, ?) AND expires_at > ?",
                (watch.proved_key, watch.undelivered_key, now),
            ).fetchall()
        )
        proved, undelivered = counts.get(watch.proved_key, 0), counts.get(watch.undelivered_key, 0)
        too_few = proved * 100 < sent * watch.min_proved_percent
        too_lost = bool(watch.max_undelivered_percent) and undelivered * 100 >= sent * watch.max_undelivered_percent
        if (too_few or too_lost) and not self._live(cur, watch.quarantine_key, now):
            self._exec(cur, BUMP, (watch.quarantine_key, now + watch.hold, now, now)).fetchall()
            return True
        return False
