"""Where codes and limit counters live: one interface, chosen by ``database.url``."""

from __future__ import annotations

from .base import SCHEMA_VERSION, WRONG, CodeRecord, Refusal, Rule, SqlStore

__all__ = ["SCHEMA_VERSION", "WRONG", "CodeRecord", "Refusal", "Rule", "SqlStore", "open_store"]


def open_store(url: str, config: dict) -> SqlStore:
    """Open the store named by ``url`` (``sqlite:///...`` or ``postgresql://...``)."""
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore, path_of

        return SqliteStore(
            path_of(url),
            synchronous=config["database.sqlite_synchronous"],
            busy_timeout_ms=config["database.busy_timeout_ms"],
        )
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, pool_size=config["database.pool_size"])
    raise ValueError(f"unsupported database URL {url!r}")
