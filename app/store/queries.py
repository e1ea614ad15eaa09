"""What the store's mixins (the audit queries, housekeeping) need of SqlStore, which supplies it."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any


class Queries:
    """The transaction and statement helpers SqlStore and its engines implement."""

    def _transaction(self, migration: bool = False) -> AbstractContextManager[Any]:  # pragma: no cover
        raise NotImplementedError

    def _exec(self, cur: Any, statement: str, params: Sequence[Any] = ()) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _sql(self, statement: str) -> str:  # pragma: no cover
        raise NotImplementedError

    def _live(self, cur: Any, key: str, now: int) -> bool:
        """Whether the counter ``key`` exists and has not expired (a mark: returning, quarantined)."""
        return bool(self._exec(cur, "SELECT 1 FROM counters WHERE key = ? AND expires_at > ?", (key, now)).fetchall())
