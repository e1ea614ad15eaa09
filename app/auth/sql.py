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

    url: str = setting(
        "", "sqlite:///path/users.db or postgresql://user@host/db: your database, not the service's.", secret=True
    )
    query: str = setting(
        "SELECT password_hash, address, name FROM users WHERE username = :user",
        "Returns the hash, the mesibo address and the display name of :user (one row).",
    )
    address_prefix: str = setting("", "Prefix for that address.")
    timeout: float = setting(3.0, "Seconds to wait for that database.", check=between(0.5, 60))
    dummy_hash: str = setting(
        "",
        "A hash made as your table's are (the same algorithm and cost, of any password): "
        "an unknown user is checked against it, so it costs what a known one does. Empty: "
        "learned from the first known user (argon2's defaults until then).",
    )

    def validate(self) -> None:
        if not self.url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError("auth.sql.url", "must be sqlite:///... or postgresql://...")
        if ":user" not in self.query:
            raise ConfigError("auth.sql.query", "must use :user for the user id")


def verify(stored: str, password: str) -> bool:
    """Whether ``password`` matches an argon2 (``$argon2id$...``) or bcrypt (``$2b$...``) hash.
    bcrypt reads at most 72 bytes of a password - every bcrypt that made such a hash cut it there -
    so a longer one is cut the same way (it answered INTERNAL and told bcrypt users apart)."""
    if stored.startswith("$argon2"):
        from argon2 import PasswordHasher
        from argon2.exceptions import Argon2Error

        try:
            return PasswordHasher().verify(stored, password)
        except Argon2Error:
            return False
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        import bcrypt

        try:
            return bcrypt.checkpw(password.encode()[:72], stored.encode())
        except ValueError:  # not a bcrypt hash after all
            return False
    return False


def like(stored: str) -> str | None:
    """A hash of a throwaway password made with ``stored``'s algorithm and cost (None: not one we
    know), so checking against it costs what checking against ``stored`` does."""
    if stored.startswith("$argon2"):
        from argon2 import PasswordHasher, extract_parameters
        from argon2.exceptions import InvalidHashError
        from argon2.low_level import Type

        try:
            p = extract_parameters(stored)
        except (InvalidHashError, ValueError):
            return None
        return PasswordHasher(
            time_cost=p.time_cost,
            memory_cost=p.memory_cost,
            parallelism=p.parallelism,
            hash_len=p.hash_len,
            salt_len=p.salt_len,
            type=Type(p.type),
        ).hash("dummy")
    if stored.startswith(("$2a$", "$2b$", "$2y$")) and stored[4:6].isdigit():
        import bcrypt

        return bcrypt.hashpw(b"dummy", bcrypt.gensalt(rounds=int(stored[4:6]), prefix=stored[1:3].encode())).decode()
    return None


class SqlLogin(PasswordLogin):
    section = "auth.sql"
    Settings = SqlSettings
    options: SqlSettings

    def __init__(self, options: SqlSettings, kit: LoginKit):
        argon2 = requires("argon2", "sql", "passwords")
        requires("bcrypt", "sql", "passwords")
        super().__init__(options, kit)
        # Checked when the user does not exist, so an unknown name costs as long as a known one:
        # the configured one, else made like the first known user's hash (see ``_learn``).
        self.dummy = options.dummy_hash or argon2.PasswordHasher().hash("not a password of anyone's")
        self._learned = bool(options.dummy_hash)

    def _row(self, user: str) -> tuple[Any, ...] | None:
        o = self.options
        try:
            if o.url.startswith("sqlite:///"):
                path = o.url[len("sqlite:///") :]
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
        if row and not self._learned:
            self._learn(str(stored or ""))
        if not verify(str(stored or self.dummy), password) or not row or not address:
            return None
        return self.options.address_prefix + str(address), str(name or "")

    def _learn(self, stored: str) -> None:
        """Make the dummy like the table's hashes (once): a bcrypt table's unknown users cost 2 ms
        against argon2's 200, which told them apart (measured: bcrypt cost 4, 2.4 ms; argon2, 218 ms)."""
        made = like(stored)
        if made:
            self.dummy, self._learned = made, True
