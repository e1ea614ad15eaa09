"""Fixtures: a fresh app on a temporary SQLite file, a test client, an injectable clock,
the in-memory sender, and mesibo's API mocked at the HTTP boundary with `responses`."""

from __future__ import annotations

import os
import uuid

import pytest
import responses

from app import create_app

API_URL = "https://mesibo.test/backend/"
APP_TOKEN = "test-app-token-5f2b9c7e1d"
OTP_SECRET = "test-otp-secret-0123456789abcdef"
PHONE = "18005551234"
APPID = "com.mesibo.test"


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def base_config(tmp_path, **extra):
    config = {
        "database.url": f"sqlite:///{tmp_path}/test.db",
        "sender.name": "memory",
        "mesibo.app_token": APP_TOKEN,
        "mesibo.api_url": API_URL,
        "otp.secret": OTP_SECRET,
        "server.development": "false",
        "logging.requests": False,
    }
    config.update(extra)
    return config


@pytest.fixture(name="clock")
def _clock():
    return FakeClock()


@pytest.fixture(name="make_app")
def _make_app(tmp_path, clock):
    """Build an app with extra configuration keys (dotted names)."""

    def make(environ=None, **extra):
        return create_app(base_config(tmp_path, **extra), environ=environ or {}, clock=clock)

    return make


@pytest.fixture(name="app")
def _app(make_app):
    return make_app()


@pytest.fixture(name="client")
def _client(app):
    return app.test_client()


@pytest.fixture(name="services")
def _services(app):
    return app.extensions["messenger"]


@pytest.fixture(name="outbox")
def _outbox(services):
    return services.sender


@pytest.fixture(name="mesibo_api")
def _mesibo_api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def mint_ok(mock, token="user-token-1"):  # noqa: S107 - a fake user token
    return mock.post(API_URL, json={"result": True, "user": {"uid": 7, "token": token}})


def expect_useradd(mock, user, token="user-token-1", more=()):  # noqa: S107 - a fake user token
    """mesibo answers only the exact useradd request for ``user`` (with the app token), minting ``token``."""
    from responses import matchers

    expected = matchers.json_params_matcher({"op": "useradd", "token": APP_TOKEN, "user": user})
    return mock.post(API_URL, json={"result": True, "user": {"token": token}}, match=[expected, *more])


def post(client, body, **kwargs):
    """POST a JSON-able dict (or raw str/bytes) and return the parsed answer."""
    if isinstance(body, dict):
        response = client.post("/", json=body, **kwargs)
    else:
        response = client.post("/", data=body, **kwargs)
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    return response.get_json()


def ask_code(client, outbox, phone=PHONE, appid=APPID):
    answer = post(client, {"op": "login", "phone": phone, "appid": appid})
    assert answer["result"] == "OK", answer
    return outbox.last_code(phone)


def unique_phone() -> str:
    """A valid US number (area code 201), different for each call."""
    n = uuid.uuid4().int
    return f"1201{200 + n % 800}{(n // 800) % 10000:04d}"


def postgres_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")
