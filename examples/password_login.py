"""A custom login method: a username and password checked against the operator's own user table.

Use it with:

    [auth]
    method = "password_login:PasswordLogin"   # the module must be importable (PYTHONPATH)

    [auth.password]
    database = "/var/lib/messenger/users.db"  # a SQLite file with the table below

The table: ``users(username TEXT PRIMARY KEY, salt BLOB, password_hash BLOB, address TEXT, name TEXT)``,
with ``password_hash = hashlib.scrypt(password, salt=salt, n=2**14, r=8, p=1)``; ``add_user`` below
fills it. The app sends ``{"op": "login", "appid": ..., "username": ..., "password": ...}`` and gets
the usual login answer with a mesibo token for the user's ``address``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

from app.auth import Identity, LoginKit, LoginRequest
from app.errors import ApiError
from app.fields import Fields
from app.schema import setting

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)


def add_user(database: str, username: str, password: str, address: str, name: str = "") -> None:
    salt = os.urandom(16)
    with sqlite3.connect(database) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS users (username TEXT PRIMARY KEY, salt BLOB, "
            "password_hash BLOB, address TEXT, name TEXT)"
        )
        conn.execute(
            "INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?, ?)",
            (username, salt, hash_password(password, salt), address, name),
        )


@dataclass(frozen=True)
class PasswordSettings:
    """The section ``[auth.password]``: checked at start-up like the service's own (a typo is an error)."""

    database: str = setting("users.db", "The SQLite file that holds the users table.")


class PasswordLogin:
    """The three methods every login method has: is_proof, begin, prove."""

    section = "auth.password"
    Settings = PasswordSettings

    # Compared against when the user does not exist, so an unknown name takes as long as a known one.
    _DUMMY_SALT = b"\0" * 16

    def __init__(self, options: PasswordSettings, kit: LoginKit):
        self.database = options.database
        self.kit = kit  # the store and the limit rules are all this method uses

    def is_proof(self, fields: Fields) -> bool:
        return True  # one step: every login request carries the password

    def begin(self, request: LoginRequest) -> dict[str, Any]:
        raise ApiError("BADCODE")

    def prove(self, request: LoginRequest) -> Identity:
        # The service's own limits apply: checks per client IP and the per-user failure lock-out.
        # A refusal raises Refused, which the service answers RATELIMIT with the wait.
        username = request.fields.text("username", error="BADCODE").lower()
        subject = f"user:{username}"
        self.kit.store.hit(self.kit.limits.for_check(subject, request.client_ip), request.now)
        password = request.fields.text("password", error="BADCODE")
        with sqlite3.connect(self.database) as conn:
            row = conn.execute(
                "SELECT salt, password_hash, address, name FROM users WHERE username = ?", (username,)
            ).fetchone()
        salt, stored, address, name = row or (self._DUMMY_SALT, b"", "", "")
        if not (hmac.compare_digest(hash_password(password, salt), stored) and row):
            self.kit.store.count(self.kit.limits.failures(subject, request.client_ip), request.now)
            raise ApiError("BADCODE")
        return Identity(address, name)
