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

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 3.0,
        pool_timeout: float = 3.0,
        lock_timeout_ms: int = 5000,
    ):
        super().__init__()
        self.url = url
        self.lock_timeout_ms = lock_timeout_ms
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.pool_timeout = pool_timeout
        self._pool = PerProcess(self._make_pool, close=lambda pool: pool.close())

    def _make_pool(self) -> Any:
        from psycopg_pool import ConnectionPool

        return ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            # libpq's connect_timeout is whole seconds, at least 2
            kwargs={"autocommit": True, "connect_timeout": max(2, round(self.connect_timeout))},
            open=True,
            name="messenger",
            # A request waits this long for a connection, then fails with the envelope: while the
            # database is down logins fail in seconds, not after psycopg's default 30 s.
            timeout=self.pool_timeout,
            # Every connection is checked as it is handed out, so the ones the database dropped
            # while it was down are replaced at once when it returns, not after a failed login each.
            check=ConnectionPool.check_connection,
            reconnect_timeout=self.connect_timeout * 4,
            configure=self._configure,
        )

    def _configure(self, conn: Any) -> None:
        """Every connection: a write waits ``lock_timeout_ms`` at most for a lock (a table locked by
        hand, a long transaction elsewhere) and a statement runs a second longer at most, so a login
        fails with the envelope inside its deadline instead of waiting as long as the lock lasts.
        (0 turns both off, as PostgreSQL's own default.)"""
        conn.execute(f"SET lock_timeout = {int(self.lock_timeout_ms)}")
        conn.execute(f"SET statement_timeout = {int(self.lock_timeout_ms) + 1000 if self.lock_timeout_ms else 0}")

    @contextlib.contextmanager
    def _transaction(self, migration: bool = False) -> Iterator[Any]:
        with self._pool.get().connection() as conn:
            with conn.transaction():
                with conn.cursor() as cur:
                    if migration:  # a schema change may wait and run as long as it needs
                        cur.execute("SET LOCAL lock_timeout = 0")
                        cur.execute("SET LOCAL statement_timeout = 0")
                        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    yield cur

    def close(self) -> None:
        self._pool.close()

    def unready(self, within: float) -> str | None:
        try:
            with self._pool.get().connection(timeout=within) as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return "the database is a read-only standby"
        except Exception as exc:  # any failure to talk to it means not ready
            return f"the database does not answer ({type(exc).__name__})"
        return None
