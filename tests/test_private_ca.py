"""An on-premise mesibo and an SMS gateway behind a private CA: trusted through a CA-file setting or
REQUESTS_CA_BUNDLE, against a local HTTPS stand-in whose certificate comes from a CA the test makes."""

from __future__ import annotations

import pytest
from helpers import APP_TOKEN, PHONE, login, services_of

from tools.processes import FakeMesibo, throwaway_ca

pytestmark = pytest.mark.slow


@pytest.fixture(name="https_stand_in")
def _https_stand_in(tmp_path):
    ca, cert, key = throwaway_ca(tmp_path)
    fake = FakeMesibo(APP_TOKEN, tls=(cert, key))
    yield fake, ca
    fake.stop()


def full_login(app):
    client, outbox = app.test_client(), services_of(app).sender
    login(client)
    return login(client, otp=outbox.last_code(PHONE))


def test_mesibo_behind_a_private_ca_is_trusted_with_its_ca_file(make_app, https_stand_in):
    fake, ca = https_stand_in
    config = {"mesibo.api_url": fake.url, "limits.resend_cooldown_seconds": 0}
    assert full_login(make_app(**config, **{"mesibo.ca_file": str(ca)}))["result"] == "OK"
    assert full_login(make_app(**config))["error"] == "BADAPP"  # not trusted without it


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_ca_bundle_variables_are_honoured(make_app, https_stand_in, monkeypatch, variable):
    fake, ca = https_stand_in
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)  # requests reads it first, so do we
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv(variable, str(ca))
    answer = full_login(make_app(**{"mesibo.api_url": fake.url}))
    assert answer["result"] == "OK", answer


def test_an_sms_gateway_behind_a_private_ca(make_app, https_stand_in):
    fake, ca = https_stand_in
    webhook = {
        "sender.name": "webhook",
        "sender.webhook.url": fake.url,
        "sender.webhook.secret": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3",
        "limits.resend_cooldown_seconds": 0,
    }
    assert login(make_app(**webhook, **{"sender.ca_file": str(ca)}).test_client())["result"] == "OK"
    assert login(make_app(**webhook).test_client())["error"] == "SENDFAIL"
