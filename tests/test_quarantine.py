"""Automatic quarantine (issue 22, item 4): a prefix that gets many codes and proves few is pumped;
new numbers of it get no code for a while (BADPHONE, as a blocked number), its returning users and
every other prefix go on."""

from __future__ import annotations

import re

from helpers import login, mint_ok, services_of

PUMPED, NORMAL = "1201555", "1202555"  # two US prefixes (quarantine_prefix_digits = 6: 120155, 120255)
CONFIG = {
    "limits.sends_per_ip_per_hour": 0,
    "limits.global_sends_per_hour": 0,
    "limits.quarantine_min_sends": 20,
    "limits.quarantine_min_proved_percent": 10,
    "limits.quarantine_seconds": 3600,
}


def number(prefix: str, n: int) -> str:
    return f"{prefix}{n:04d}"


def test_a_pumped_prefix_is_quarantined_and_no_other_is(make_app, mesibo_api, clock):
    mint_ok(mesibo_api)
    app = make_app(**CONFIG)
    client, services = app.test_client(), services_of(app)
    outbox = services.sender
    returning = number(PUMPED, 9999)  # a user of the pumped prefix who logged in before
    login(client, phone=returning)
    assert login(client, phone=returning, otp=outbox.last_code(returning))["result"] == "OK"

    pumped, normal = [], []
    for n in range(60):
        pumped.append(login(client, phone=number(PUMPED, n), ip=f"10.0.{n}.1").get("error", "OK"))
        if n % 3 == 0:  # meanwhile real users of another prefix log in
            phone = number(NORMAL, n)
            login(client, phone=phone)
            normal.append(login(client, phone=phone, otp=outbox.last_code(phone))["result"])
    # the send that made 20 to the prefix (the returning user's and 19 pumped) with 1 proved (5 %)
    # quarantined it: every new number after it is refused, with the answer of a blocked number
    assert pumped == ["OK"] * 19 + ["BADPHONE"] * 41
    assert normal == ["OK"] * 20  # never quarantined: its codes are proved
    assert len([m for m in outbox.outbox if m.address.startswith(PUMPED)]) == 1 + 19

    quarantined = services.store.events(event="quarantined")
    assert [e.detail for e in quarantined] == [PUMPED[:6]]
    metrics = client.get("/metrics").data.decode()
    assert 'messenger_quarantines_total{reason="pumping"} 1.0' in metrics
    assert 'messenger_limit_refusals_total{kind="quarantine"} 41.0' in metrics
    refused = services.store.events(event="refused")
    assert len(refused) == 41 and refused[0].detail == f"prefix {PUMPED[:6]} quarantined"
    # its returning user still gets a code (once the resend cooldown is over), and logs in
    clock.advance(61)
    assert login(client, phone=returning)["result"] == "OK"
    assert login(client, phone=returning, otp=outbox.last_code(returning))["result"] == "OK"

    clock.advance(3600)  # the quarantine and the window end: new numbers get codes again
    assert login(client, phone=number(PUMPED, 100))["result"] == "OK"


def test_support_sees_and_releases_a_quarantine(make_app, clock):
    app = make_app(**CONFIG)
    client = app.test_client()
    for n in range(20):
        login(client, phone=number(PUMPED, n), ip=f"10.0.{n}.1")
    assert login(client, phone=number(PUMPED, 50))["error"] == "BADPHONE"
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["quarantine"]).output
    assert re.search(r"120155 +1h 00m +20 +0", listed), listed
    released = runner.invoke(args=["quarantine", "--release", "120155"])
    assert released.exit_code == 0 and "released 120155" in released.output
    assert "(none)" in released.output
    assert login(client, phone=number(PUMPED, 51))["result"] == "OK"  # counted afresh, not re-quarantined
    assert runner.invoke(args=["quarantine", "--release", "12x"]).exit_code != 0


def test_the_quarantine_can_be_turned_off(make_app):
    app = make_app(**{**CONFIG, "limits.quarantine_prefix_digits": 0})
    client = app.test_client()
    assert [login(client, phone=number(PUMPED, n), ip=f"10.0.{n}.1")["result"] for n in range(40)] == ["OK"] * 40
