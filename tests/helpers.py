"""What tests share besides fixtures: constants, the fake clock, the base configuration, one helper
to POST a login, one to run calls together, and mesibo's answers at the HTTP boundary."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from responses import matchers

from app.services import Services, of

API_URL = "https://mesibo.test/backend/"
APP_TOKEN = "test-app-token-5f2b9c7e1d"
OTP_SECRET = "test-otp-secret-0123456789abcdef"
PHONE = "18005551234"
APPID = "com.mesibo.test"
# the SMS providers' test accounts (their clouds are stood in for with ``responses``)
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token-secret-42"  # noqa: S105 - a test secret
TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
TWILIO = {
    "sender.name": "twilio",
    "sender.twilio.account_sid": TWILIO_SID,
    "sender.twilio.auth_token": TWILIO_TOKEN,
    "sender.twilio.from_number": "+15005550006",
}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def base_config(tmp_path, **extra) -> dict[str, Any]:
    config = {
        "database.url": f"sqlite:///{tmp_path}/test.db",
        "sender.name": "memory",
        "mesibo.app_token": APP_TOKEN,
        "mesibo.api_url": API_URL,
        "otp.secret": OTP_SECRET,
        "server.development": "false",
        "logging.requests": False,
        "audit.flush_seconds": 0,  # each request writes its trail at once: tests read it right after
    }
    config.update(extra)
    return config


def services_of(app) -> Services:
    return of(app)


def mint_ok(mock, token="user-token-1"):  # noqa: S107 - a fake user token
    return mock.post(API_URL, json={"result": True, "user": {"uid": 7, "token": token}})


def expect_useradd(mock, user, token="user-token-1", more=()):  # noqa: S107 - a fake user token
    """mesibo answers only the exact useradd request for ``user`` (with the app token), minting ``token``."""
    expected = matchers.json_params_matcher({"op": "useradd", "token": APP_TOKEN, "user": user})
    return mock.post(API_URL, json={"result": True, "user": {"token": token}}, match=[expected, *more])


def post(client, body, **kwargs):
    """POST a JSON-able dict (or raw str/bytes) and return the parsed answer (always 200 JSON)."""
    if isinstance(body, dict):
        response = client.post("/", json=body, **kwargs)
    else:
        response = client.post("/", data=body, **kwargs)
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    return response.get_json()


def login(client, phone=PHONE, *, otp=None, appid=APPID, ip=None, headers=None, **fields):
    """A login request: step 1 without ``otp``, step 2 with it; from ``ip`` when given."""
    body = {"op": "login", "phone": phone, "appid": appid, **fields}
    if otp is not None:
        body["otp"] = otp
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if ip:
        kwargs["environ_overrides"] = {"REMOTE_ADDR": ip}
    return post(client, body, **kwargs)


def ask_code(client, outbox, phone=PHONE, appid=APPID, **kwargs) -> str:
    """Step 1, and the code the in-memory sender delivered."""
    answer = login(client, phone, appid=appid, **kwargs)
    assert answer["result"] == "OK", answer
    return outbox.last_code(phone)


def wrong(code: str) -> str:
    """A code of the same length that is not ``code``."""
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def together(count: int, call: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Run ``call`` in ``count`` threads released at the same moment; their results (errors raise)."""
    barrier = threading.Barrier(count)
    results, errors, lock = [], [], threading.Lock()

    def worker():
        try:
            barrier.wait()
            result = call()
        except Exception as exc:  # surfaced below
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if errors:
        raise errors[0]
    return results


def unique_phone() -> str:
    """A valid US number (area code 201), different for each call."""
    n = uuid.uuid4().int
    return f"1201{200 + n % 800}{(n // 800) % 10000:04d}"


def postgres_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


@contextlib.contextmanager
def sqlite_file(path, **kwargs):
    """A connection to an SQLite file: what the block did is committed, and the connection closed
    (sqlite3's own ``with`` only commits; an unclosed connection is a ResourceWarning on Python 3.13)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(path, **kwargs)) as conn, conn:
        yield conn


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(driver):
    """Debian's Chromium, headless, through a Playwright driver: no sandbox (root in CI), nothing of
    its own on the network (no QUIC, updates, sync or background requests)."""
    return driver.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)


PUMPED_REGIONS = ["GB", "DE", "FR", "IT", "ES", "NL", "BE", "AT", "CH", "SE", "PL", "PT", "IE", "DK"]


def mobile_prefixes(regions: list[str]) -> list[str]:
    """Per region, the E.164 digits of libphonenumber's example mobile number without its last three:
    a prefix under which a test makes valid new mobile numbers of that country."""
    import phonenumbers

    return [
        phonenumbers.format_number(
            phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE),
            phonenumbers.PhoneNumberFormat.E164,
        ).lstrip("+")[:-3]
        for region in regions
    ]


def holder_of(path, request=None):
    """Another process's hand on an SQLite file (``BEGIN EXCLUSIVE`` through it locks the store out),
    closed when the test ends."""
    import sqlite3

    conn = sqlite3.connect(str(path), isolation_level=None)
    if request is not None:
        request.addfinalizer(conn.close)
    return conn


@contextlib.contextmanager
def postgres_schema(prefix: str = "t"):
    """A database URL whose connections use a schema of their own on TEST_DATABASE_URL, dropped after."""
    import psycopg

    url = postgres_url()
    assert url, "TEST_DATABASE_URL is not set"
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


ENGINES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.skipif(not postgres_url(), reason="TEST_DATABASE_URL is not set")),
]


@contextlib.contextmanager
def engine_config(engine: str, prefix: str = "e"):
    """The configuration keys that put an app on ``engine`` (ENGINES): none for SQLite (the test's
    own file), a schema of its own on TEST_DATABASE_URL for PostgreSQL."""
    if engine == "sqlite":
        yield {}
        return
    with postgres_schema(prefix) as url:
        yield {"database.url": url}


def run_flask(command: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    """``flask --app app <command>`` in a process of its own, as an operator runs it."""
    flask = str(Path(sys.executable).parent / "flask")
    return subprocess.run(
        [flask, "--app", "app", *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def user_table(tmp_path, users: dict[str, tuple[str, str, str]] | None = None) -> dict[str, Any]:
    """An SQLite user table for ``auth.method = "sql"``: username -> (bcrypt'd password, address,
    name); the configuration that logs in against it."""
    import bcrypt

    path = tmp_path / "users.db"
    with sqlite_file(path) as conn:
        conn.execute("CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT, address TEXT, name TEXT)")
        for username, (password, address, name) in (users or {}).items():
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            conn.execute("INSERT INTO users VALUES (?, ?, ?, ?)", (username, hashed, address, name))
    return {
        "auth.method": "sql",
        "auth.sql.url": f"sqlite:///{path}",
        "auth.sql.query": "SELECT password, address, name FROM users WHERE username = :user",
    }
