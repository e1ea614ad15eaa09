"""Fixtures: a fresh app on a temporary SQLite file, a test client, an injectable clock, the
in-memory sender, and mesibo's API mocked at the HTTP boundary with `responses`."""

from __future__ import annotations

import pytest
import responses
from helpers import FakeClock, base_config, services_of

from app import create_app


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
    return services_of(app)


@pytest.fixture(name="outbox")
def _outbox(services):
    return services.sender


@pytest.fixture(name="mesibo_api")
def _mesibo_api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
