"""mesibo-managed codes (auth.method = "mesibo_otp"), against the stand-in that makes and checks codes
as mesibo does: step 1 asks mesibo's otp op, step 2 hands the code to useradd - our limits in front."""

from __future__ import annotations

import pytest
from helpers import APP_TOKEN, PHONE, login, services_of, wrong

from tools.processes import FakeMesibo

pytestmark = pytest.mark.slow


@pytest.fixture(name="stand_in")
def _stand_in():
    fake = FakeMesibo(APP_TOKEN)
    yield fake
    fake.stop()


@pytest.fixture(name="mesibo_app", params=["backend", "legacy"])
def _mesibo_app(request, make_app, stand_in):
    def make(**extra):
        return make_app(
            **{"auth.method": "mesibo_otp", "mesibo.api_url": stand_in.url, "mesibo.api_style": request.param, **extra}
        )

    return make


def test_mesibo_makes_the_code_and_mints_only_with_it(mesibo_app, stand_in):
    app = mesibo_app()
    client, outbox = app.test_client(), services_of(app).sender
    assert login(client)["result"] == "OK"
    code = outbox.last_code(PHONE)  # made by mesibo, delivered by our sender
    assert stand_in.stats()["otp"] == 1 and code
    assert login(client, otp=wrong(code))["error"] == "BADCODE"  # mesibo refused it: not BADUSER
    answer = login(client, otp=code)
    assert answer["result"] == "OK" and answer["token"] == stand_in.stats()["tokens"][-1]["token"]
    assert stand_in.stats()["useradd-with-otp"] == 1


def test_our_limits_stand_in_front_of_mesibo(mesibo_app, stand_in):
    app = mesibo_app(**{"limits.resend_cooldown_seconds": 60})
    client, outbox = app.test_client(), services_of(app).sender
    login(client)
    assert login(client)["error"] == "RATELIMIT"  # the cooldown: mesibo is not asked again
    assert stand_in.stats()["otp"] == 1
    code = outbox.last_code(PHONE)
    for _ in range(4):
        assert login(client, otp=wrong(code), ip="198.51.100.66")["error"] == "BADCODE"


def test_wrong_answers_count_towards_the_lock_out(mesibo_app, stand_in, clock):
    app = mesibo_app(**{"limits.resend_cooldown_seconds": 0, "limits.sends_per_phone_per_hour": 100})
    client, outbox = app.test_client(), services_of(app).sender
    for _ in range(2):
        login(client, ip="198.51.100.66")
        for _ in range(5):
            login(client, otp=wrong(outbox.last_code(PHONE)), ip="198.51.100.66")
    assert login(client, otp="123456", ip="198.51.100.66")["error"] == "RATELIMIT"
    assert login(client, ip="203.0.113.9")["result"] == "OK"  # the owner, elsewhere


def test_test_numbers_keep_their_fixed_code_and_never_reach_mesibos_otp(mesibo_app, stand_in):
    app = mesibo_app(**{"phones.test_numbers": {"15550001111": "424242"}})
    client = app.test_client()
    assert login(client, "15550001111")["result"] == "OK"
    assert login(client, "15550001111", otp="424242")["result"] == "OK"
    assert "otp" not in stand_in.stats() and stand_in.stats()["useradd"] == 1


def test_a_code_asked_for_one_app_id_never_mints_for_another(mesibo_app, stand_in):
    """mesibo's codes know no app id; the service's copy of each does: another app id is refused
    before mesibo is asked, and the code still works for its own."""
    app = mesibo_app()
    client, outbox = app.test_client(), services_of(app).sender
    login(client, appid="com.example.android")
    code = outbox.last_code(PHONE)
    assert login(client, appid="com.example.other", otp=code)["error"] == "BADCODE"
    assert stand_in.stats().get("useradd", 0) == 0  # mesibo was not asked
    answer = login(client, appid="com.example.android", otp=code)
    assert answer["result"] == "OK" and stand_in.stats()["tokens"][-1]["appid"] == "com.example.android"
