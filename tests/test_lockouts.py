"""Lock-outs that cannot be aimed at someone else (issue 21, item 2): wrong answers from 10 or 1,000
addresses lock a phone for every device that never logged it in - at most 100 wrong answers per
24 h in all (NIST SP 800-63B) - but never the device its owner logged in from before (the ``device``
id the stock Android app sends with every proof), which has a lock-out of its own."""

from __future__ import annotations

import pytest
from helpers import PHONE, login, mint_ok, post, services_of, user_table, wrong

OWNER_DEVICE = "3f0c8e52-owner-phone"
CONFIG = {
    "limits.resend_cooldown_seconds": 0,
    "limits.sends_per_phone_per_hour": 0,
    "limits.sends_per_ip_per_hour": 0,
    "limits.global_sends_per_hour": 0,
}


def attack(client, outbox, addresses: int, total: int) -> list[str]:
    """``total`` wrong answers for PHONE spread over ``addresses`` client addresses (each asks for a
    code as the last one dies), with a fresh random device id every time."""
    answers: list[str] = []
    per_address = max(1, total // addresses)
    for n in range(addresses):
        ip = f"10.{n // 250}.{n % 250}.9"
        for k in range(per_address):
            if k % 5 == 0:
                login(client, ip=ip)
            code = outbox.last_code(PHONE)
            answers.append(login(client, otp=wrong(code), ip=ip, device=f"attacker-{n}-{k}-device")["error"])
    return answers


@pytest.mark.parametrize(("addresses", "total"), [(10, 110), (1000, 1000)])
def test_an_aimed_lock_out_never_shuts_out_the_owners_device(make_app, mesibo_api, clock, addresses, total):
    mint_ok(mesibo_api)
    app = make_app(**CONFIG)
    client, outbox = app.test_client(), services_of(app).sender
    login(client, ip="203.0.113.50")
    first = login(client, otp=outbox.last_code(PHONE), ip="203.0.113.50", device=OWNER_DEVICE)
    assert first["result"] == "OK"  # the owner's phone is a known device from now on

    answers = attack(client, outbox, addresses, total)
    # at most 100 wrong answers per phone per day, in all; every other one refused
    assert answers.count("BADCODE") == 100 and answers.count("RATELIMIT") == len(answers) - 100

    # a device that never logged the phone in waits out the day, wherever it is
    login(client, ip="192.0.2.77")
    locked = login(client, otp=outbox.last_code(PHONE), ip="192.0.2.77", device="owner-new-tablet")
    assert locked["error"] == "RATELIMIT" and locked["retry_after"] > 86400 - 3600
    # the owner's phone logs in at once, from any address
    login(client, ip="192.0.2.78")
    answer = login(client, otp=outbox.last_code(PHONE), ip="192.0.2.78", device=OWNER_DEVICE)
    assert answer["result"] == "OK", answer


def test_a_known_device_has_its_own_lock_out(make_app, mesibo_api, clock):
    """A stolen device id is no master key: 10 wrong answers a day from it, then it waits too."""
    mint_ok(mesibo_api)
    app = make_app(**CONFIG)
    client, outbox = app.test_client(), services_of(app).sender
    login(client)
    assert login(client, otp=outbox.last_code(PHONE), device=OWNER_DEVICE)["result"] == "OK"
    errors = []
    for k in range(11):
        if k % 5 == 0:
            login(client)
        errors.append(login(client, otp=wrong(outbox.last_code(PHONE)), device=OWNER_DEVICE)["error"])
    assert errors == ["BADCODE"] * 10 + ["RATELIMIT"]
    login(client, ip="192.0.2.5")  # her tablet, elsewhere: the phone's lock-out is the phone's alone
    answer = login(client, otp=outbox.last_code(PHONE), ip="192.0.2.5", device="another-device-of-ann")
    assert answer["result"] == "OK"


def test_a_device_is_known_only_for_the_account_it_logged_in(make_app, mesibo_api, clock):
    mint_ok(mesibo_api)
    app = make_app(**CONFIG)
    client, outbox = app.test_client(), services_of(app).sender
    other = "12015550177"
    login(client, phone=other)
    assert login(client, phone=other, otp=outbox.last_code(other), device=OWNER_DEVICE)["result"] == "OK"
    attack(client, outbox, 10, 110)
    login(client)
    assert login(client, otp=outbox.last_code(PHONE), device=OWNER_DEVICE)["error"] == "RATELIMIT"


def test_a_password_login_keeps_the_owners_device_too(make_app, mesibo_api, tmp_path):
    mint_ok(mesibo_api)
    app = make_app(**user_table(tmp_path, {"ann": ("ann-pass-1", "ann", "Ann")}))
    client = app.test_client()

    def password(pw, ip, device=""):
        body = {"op": "login", "appid": "a", "user": "ann", "password": pw, **({"device": device} if device else {})}
        return post(client, body, environ_overrides={"REMOTE_ADDR": ip})

    assert password("ann-pass-1", "203.0.113.1", OWNER_DEVICE)["result"] == "OK"
    answers = [password("guess", f"10.0.{n}.1", f"bot-{n}-{k}")["error"] for n in range(20) for k in range(10)]
    assert answers.count("BADLOGIN") == 100 and answers.count("RATELIMIT") == len(answers) - 100
    assert password("ann-pass-1", "192.0.2.1")["error"] == "RATELIMIT"  # a new device
    assert password("ann-pass-1", "192.0.2.1", OWNER_DEVICE)["result"] == "OK"  # her phone


def test_unblock_keeps_known_devices_and_deleting_the_account_forgets_them(make_app, mesibo_api, clock):
    mint_ok(mesibo_api)
    app = make_app(**CONFIG)
    client, services = app.test_client(), services_of(app)
    login(client)
    assert login(client, otp=services.sender.last_code(PHONE), device=OWNER_DEVICE)["result"] == "OK"
    known = services.limits.known_device(PHONE, OWNER_DEVICE)
    assert known and services.store.counters_of([known[0]])
    assert app.test_cli_runner().invoke(args=["unblock", PHONE]).exit_code == 0
    assert services.store.counters_of([known[0]])
    mesibo_api.post("https://mesibo.test/backend/", json={"result": True})
    assert app.test_cli_runner().invoke(args=["delete-account", PHONE, "--yes"]).exit_code == 0
    assert services.store.counters_of([known[0]]) == []
