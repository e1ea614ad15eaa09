"""Housekeeping, mixed into SqlStore: expired codes, counters, events and tokens are deleted in small
batches - lazily during logins, and all at once by ``flask purge`` (the purge timer)."""

from __future__ import annotations

import logging

from .queries import Queries

logger = logging.getLogger("app.store")


class Housekeeping(Queries):
    """Mixed into SqlStore (see Queries)."""

    _last_tidy: int

    # Lazy housekeeping: at most one small batch per interval per process, so expired rows never
    # pile up even without the purge timer, and no login waits on a big delete.
    TIDY_INTERVAL = 60
    TIDY_BATCH = 500

    def tidy(self, now: int) -> None:
        """Purge one small batch of expired rows, at most once per interval in this process."""
        if now - self._last_tidy < self.TIDY_INTERVAL:
            return
        self._last_tidy = now
        try:
            self.purge(now, self.TIDY_BATCH, max_batches=1)
        except Exception:  # housekeeping must never fail a login
            logger.warning("lazy purge failed", exc_info=True)

    def purge(self, now: int, batch: int = 1000, max_batches: int | None = None) -> int:
        """Delete expired codes, counters and events, ``batch`` rows per transaction; returns rows removed.

        Short transactions keep the write lock free for logins while a big backlog drains.
        ``max_batches`` bounds the work per table (lazy cleanup does one batch at a time).
        """
        if batch < 1:
            raise ValueError("the batch must be at least 1 row")
        removed = 0
        for table in ("codes", "counters", "events", "tokens"):
            batches = 0
            while max_batches is None or batches < max_batches:
                with self._transaction() as cur:
                    cur = self._exec(cur, self._purge_sql(table), (now, batch))
                    done = cur.rowcount
                removed += max(done, 0)
                batches += 1
                if done < batch:
                    break
        return removed

    def _purge_sql(self, table: str) -> str:
        key = {"codes": "address, appid", "counters": "key", "events": "id", "tokens": "key"}[table]
        return f"DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE expires_at <= ? LIMIT ?)"
