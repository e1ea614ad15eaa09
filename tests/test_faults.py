"""Faults, for real: a mesibo that trickles or stalls, a worker killed mid-login. Each bounded in time."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest
import requests
from helpers import APP_TOKEN, OTP_SECRET, PHONE, login, services_of

from tools.processes import FakeMesibo, Service

pytestmark = [pytest.mark.slow, pytest.mark.fault]


@pytest.fixture(name="fake_mesibo")
def _fake_mesibo():
    fake = FakeMesibo(APP_TOKEN)
    yield fake
    fake.stop()


@pytest.mark.parametrize("fault", ["trickle", "stall"])
def test_a_slow_mesibo_costs_a_login_at_most_connect_plus_read_timeout(make_app, fake_mesibo, fault):
    """The read timeout starts again with every byte; the login's deadline does not."""
    app = make_app(
        **{
            "mesibo.api_url": fake_mesibo.url,
            "mesibo.connect_timeout": 0.5,
            "mesibo.read_timeout": 1.5,
            "mesibo.revoke_on_logout": True,
        }
    )
    client, outbox = app.test_client(), services_of(app).sender
    fake_mesibo.control(fail=fault)
    login(client)
    started = time.monotonic()
    answer = login(client, otp=outbox.last_code(PHONE))
    took = time.monotonic() - started
    assert answer["result"] == "FAIL" and answer["error"] == "BADAPP"
    assert took < 2.0 + 0.5, f"{fault}: {took:.1f} s"
    started = time.monotonic()
    assert client.post("/", json={"op": "logout", "token": "user-token"}).get_json()["result"] == "OK"
    assert time.monotonic() - started < 2.5
    fake_mesibo.control(fail="none")
    answer = login(client, otp=outbox.last_code(PHONE))  # the code was given back: it still works
    assert answer["result"] == "OK", answer


def test_a_worker_killed_mid_login_does_not_cost_the_user_the_code(tmp_path, fake_mesibo):
    """SIGKILL after mesibo took the request: the code is claimed, not spent; the claim lapses."""
    service = Service(
        tmp_path,
        {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake_mesibo.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/kill.db",
            "MESSENGER_SENDER_NAME": "log",
            "MESSENGER_MESIBO_CONNECT_TIMEOUT": "0.5",
            "MESSENGER_MESIBO_READ_TIMEOUT": "2.5",  # so a claim lasts 0.5 + 2.5 + 2 = 5 s
        },
        workers=1,
    )
    try:
        body = {"op": "login", "phone": PHONE, "appid": "a"}
        assert requests.post(service.url, json=body, timeout=10).json()["result"] == "OK"
        [code] = re.findall(r"login code for \d+: (\d+)", service.log())
        fake_mesibo.control(latency_ms=2000)
        outcome = []

        def step_two():
            try:
                outcome.append(requests.post(service.url, json={**body, "otp": code}, timeout=10).json())
            except requests.RequestException as exc:
                outcome.append(exc)

        in_flight = threading.Thread(target=step_two)
        in_flight.start()
        deadline = time.monotonic() + 5
        while fake_mesibo.stats().get("useradd-received", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake_mesibo.stats().get("useradd-received") == 1  # mesibo has the request (and will mint)
        [worker] = re.findall(r"Booting worker with pid: (\d+)", service.log())
        os.kill(int(worker), signal.SIGKILL)
        in_flight.join(timeout=10)
        assert isinstance(outcome[0], requests.RequestException)  # the user saw the worker die
        service.wait_for_workers(2)  # gunicorn booted a new one
        fake_mesibo.control(latency_ms=0)
        retry = requests.post(service.url, json={**body, "otp": code}, timeout=10).json()
        assert retry["error"] == "BADCODE"  # still claimed by the dead worker: no second token yet
        time.sleep(5.2)
        retry = requests.post(service.url, json={**body, "otp": code}, timeout=10).json()
        assert retry["result"] == "OK" and retry["token"] == fake_mesibo.stats()["tokens"][-1]["token"]
        again = requests.post(service.url, json={**body, "otp": code}, timeout=10).json()
        assert again["error"] == "BADCODE"  # and then it is spent
    finally:
        service.stop()
