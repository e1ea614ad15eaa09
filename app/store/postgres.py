"""PostgreSQL: the shared store when several nodes serve one app.

psycopg 3 with a connection pool per worker process (a pool made before a fork is never
used after it). Atomicity comes from the same statements as SQLite: row locks taken by
``INSERT ... ON CONFLICT DO UPDATE`` / ``UPDATE ... RETURNING`` / ``DELETE`` inside one
transaction. Migrations take a transaction-scoped advisory lock, so nodes that start at
the same time upgrade the schema once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..forks import PerProcess
from .base import SqlStore

# An arbitrary constant that names this service's migration lock.
_MIGRATION_LOCK = 0x6D65_7369_626F


class PostgresStore(SqlStore):
    placeholder = "%s"

    def __init__(self, url: str, *, pool_size: int = 10):
        super().__init__()
        self.url = url
        self.pool_size = pool_size
        self._pool = PerProcess(self._make_pool, close=lambda pool: pool.close())

    def _make_pool(self) -> Any:
        from psycopg_pool import ConnectionPool

        return ConnectionPool(
            self.url, min_size=1, max_size=self.pool_size, kwargs={"autocommit": True}, open=True, name="messenger"
        )

    @contextlib.contextmanager
    def _transaction(self, migration: bool = False) -> Iterator[Any]:
        with self._pool.get().connection() as conn:
            with conn.transaction():
                with conn.cursor() as cur:
                    if migration:
                        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    yield cur

    def close(self) -> None:
        self._pool.close()
