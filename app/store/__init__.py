"""Where codes, limit counters and housekeeping live: one interface, chosen by ``database.url``."""

from __future__ import annotations

from .base import SqlStore
from .records import Blocked, CodeRecord, Listing, Refused, Rule, TokenRecord, Watch
from .settings import DatabaseSettings
from .sql import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "Blocked",
    "CodeRecord",
    "DatabaseSettings",
    "Listing",
    "Refused",
    "Rule",
    "SqlStore",
    "TokenRecord",
    "Watch",
    "open_store",
]


def open_store(
    url: str,
    *,
    synchronous: str = "NORMAL",
    busy_timeout_ms: int = 5000,
    pool_size: int = 10,
    connect_timeout: float = 3.0,
    pool_timeout: float = 3.0,
) -> SqlStore:
    """Open the store named by ``url`` (``sqlite:///...`` or ``postgresql://...``)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore, path_of

        return SqliteStore(path_of(url), synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg_pool  # noqa: F401 - only to say what is missing, at start-up
        except ImportError:
            from ..schema import ConfigError

            raise ConfigError("database.url", "PostgreSQL needs: pip install 'messenger-backend[postgres]'") from None
        from .postgres import PostgresStore

        return PostgresStore(
            url,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            lock_timeout_ms=busy_timeout_ms,
        )
    raise ValueError(f"unsupported database URL {url!r}")
