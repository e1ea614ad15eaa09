"""The ``[database]`` section: which store, and how long its writes may wait."""

from __future__ import annotations

import dataclasses

from ..schema import between, one_of, setting


def _database_url(value: str) -> str | None:
    if value and not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return f"must start with sqlite:/// or postgresql://, got {value.split('@')[-1]!r}"
    return None


@dataclasses.dataclass(frozen=True)
class DatabaseSettings:
    """Where codes and limit counters live."""

    url: str = setting(
        "",
        "sqlite:///path/to/file.db (default: messenger.db in the instance folder) or "
        "postgresql://... Secret (its password).",
        env=["DATABASE_URL"],
        check=_database_url,
        secret=True,
    )
    sqlite_synchronous: str = setting(
        "NORMAL",
        "SQLite fsync policy in WAL mode: NORMAL (survives a process crash; "
        "a power cut may lose the last codes issued) or FULL (fsync on every commit).",
        check=one_of("NORMAL", "FULL"),
    )
    busy_timeout_ms: int = setting(
        5000,
        "How long a write waits for the store's locks (SQLite's writer lock; "
        "PostgreSQL's lock_timeout, and statement_timeout 1 s longer), then fails.",
        check=between(0, 60000),
    )
    pool_size: int = setting(10, "PostgreSQL connections per worker process.", check=between(1, 100))
    connect_timeout: float = setting(3.0, "Seconds to wait for a new PostgreSQL connection.", check=between(0.5, 60))
    pool_timeout: float = setting(
        3.0,
        "Seconds a request waits for a free PostgreSQL connection before it fails (with the envelope).",
        check=between(0.5, 60),
    )
    migrate_on_start: bool = setting(True, "Create or upgrade the schema when the service starts.")
