"""Your own user table: the app sends ``user`` and ``password``; the service runs the query you
configure on your database (SQLite or PostgreSQL) and checks the password against the argon2 or
bcrypt hash it returns, in constant time."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from typing import Any

from ..schema import ConfigError, between, setting
from . import LoginKit
from .password import PasswordLogin, Unavailable, requires


@dataclass(frozen=True)
class SqlSettings:
    """Your own user table (``[auth.sql]``), with ``auth.method = "sql"``."""

    url: str = setting("", "sqlite:///path/users.db or postgresql://user@host/db: your database, not the service's.",
                       secret=True)
    query: str = setting("SELECT password_hash, address, name FROM users WHERE username = :user",
                         "Returns the hash, the mesibo address and the display name of :user (one row).")
    address_prefix: str = setting("", "Prefix for that address.")
    timeout: float = setting(3.0, "Seconds to wait for that database.", check=between(0.5, 60))

    def validate(self) -> None:
        if not self.url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError("auth.sql.url", "must be sqlite:///... or postgresql://...")
        if ":user" not in self.query:
            raise ConfigError("auth.sql.query", "must use :user for the user id")


def verify(stored: str, password: str) -> bool:
    """Whether ``password`` matches an argon2 (``$argon2id$...``) or bcrypt (``$2b$...``) hash."""
    if stored.startswith("$argon2"):
        from argon2 import PasswordHasher
        from argon2.exceptions import Argon2Error

        try:
            return PasswordHasher().verify(stored, password)
        except Argon2Error:
            return False
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        import bcrypt

        return bcrypt.checkpw(password.encode(), stored.encode())
    return False


class SqlLogin(PasswordLogin):
    section = "auth.sql"
    Settings = SqlSettings
    options: SqlSettings

    def __init__(self, options: SqlSettings, kit: LoginKit):
        argon2 = requires("argon2", "sql", "passwords")
        requires("bcrypt", "sql", "passwords")
        super().__init__(options, kit)
        # Checked when the user does not exist, so an unknown name costs as long as a known one.
        self.dummy = argon2.PasswordHasher().hash("not a password of anyone's")

    def _row(self, user: str) -> tuple[Any, ...] | None:
        o = self.options
        try:
            if o.url.startswith("sqlite:///"):
                path = o.url[len("sqlite:///"):]
                with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=o.timeout)) as db:
                    return db.execute(o.query, {"user": user}).fetchone()
            import psycopg

            query = o.query.replace("%", "%%").replace(":user", "%(user)s")
            with psycopg.connect(o.url, connect_timeout=max(2, round(o.timeout))) as db:
                return db.execute(query, {"user": user}).fetchone()
        except Exception as exc:  # the operator's database down or the query wrong: not the user's fault
            raise Unavailable(f"the user table cannot be read ({type(exc).__name__})") from None

    def authenticate(self, user: str, password: str) -> tuple[str, str] | None:
        row = self._row(user)
        stored, address, name = (row[0], row[1], row[2] if len(row) > 2 else "") if row else (self.dummy, "", "")
        if not verify(str(stored or self.dummy), password) or not row or not address:
            return None
        return self.options.address_prefix + str(address), str(name or "")
