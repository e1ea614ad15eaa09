"""A login method of your own: a user id and password checked against your own user table.

Use it with:

    [auth]
    method = "user_table_login:UserTableLogin"   # the module must be importable (PYTHONPATH)

    [auth.user_table]
    database = "/var/lib/messenger/users.db"      # a SQLite file with the table below

The table: ``users(user TEXT PRIMARY KEY, salt BLOB, password_hash BLOB, address TEXT, name TEXT)``,
with ``password_hash = hashlib.scrypt(password, salt=salt, n=2**14, r=8, p=1)``; ``add_user`` below
fills it. The app sends ``{"op": "login", "appid": ..., "user": ..., "password": ...}`` and gets the
usual login answer with a mesibo token for the user's ``address``.

It subclasses the service's own base for password logins (``app.auth.password.PasswordLogin``, what
the LDAP, RADIUS and SQL logins build on), so it answers exactly as they do: the per-address and
per-user limits, ``BADLOGIN`` for every wrong user or password, ``RATELIMIT`` once guessing is
bounded, ``INTERNAL`` when the table cannot be read (raise ``Unavailable``), and the audit trail's
``proved`` and ``wrong`` events - all from the base. Only ``authenticate`` is this method's own.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import sqlite3
from dataclasses import dataclass

from app.auth.password import PasswordLogin, Unavailable
from app.schema import setting

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
# compared against when the user does not exist, so an unknown user takes as long as a known one
DUMMY = (b"\0" * 16, b"", "", "")


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)


def add_user(database: str, user: str, password: str, address: str, name: str = "") -> None:
    salt = os.urandom(16)
    # sqlite3's own ``with`` commits but does not close: closing() does
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS users (user TEXT PRIMARY KEY, salt BLOB, password_hash BLOB, "
            "address TEXT, name TEXT)"
        )
        conn.execute(
            "INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?, ?)",
            (user.lower(), salt, hash_password(password, salt), address, name),
        )


@dataclass(frozen=True)
class UserTableSettings:
    """The section ``[auth.user_table]``: checked at start-up like the service's own (a typo is an error)."""

    database: str = setting("users.db", "The SQLite file that holds the users table.")


class UserTableLogin(PasswordLogin):
    section = "auth.user_table"
    Settings = UserTableSettings

    def authenticate(self, user: str, password: str) -> tuple[str, str] | None:
        """(mesibo address, display name) for a right user and password, else None."""
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.options.database}?mode=ro", uri=True)) as conn:
                row = conn.execute(
                    "SELECT salt, password_hash, address, name FROM users WHERE user = ?", (user.lower(),)
                ).fetchone()
        except sqlite3.Error as exc:
            raise Unavailable(f"the user table cannot be read ({type(exc).__name__})") from None
        salt, stored, address, name = row or DUMMY
        if hmac.compare_digest(hash_password(password, salt), stored) and row:
            return address, name
        return None
