"""The support commands: status, events, unblock, block/allow, test-numbers - in-process, and against
real gunicorn workers and nodes, where an unblock must work at once despite each worker's hints."""

from __future__ import annotations

import http.client
import json
import re

import pytest
from helpers import (
    APP_TOKEN,
    APPID,
    OTP_SECRET,
    PHONE,
    login,
    post,
    postgres_schema,
    postgres_url,
    run_flask,
    services_of,
    user_table,
    wrong,
)

from app.audit import masked
from app.store.audit import Event
from tools.processes import ROOT, FakeMesibo, Service, clean_environment

ATTACKER = "198.51.100.66"


def lock_from(client, outbox, ip=ATTACKER, phone=PHONE):
    """Ten wrong answers for ``phone`` from ``ip``: that address is locked out of that phone."""
    for _ in range(2):
        login(client, phone, ip=ip)
        for _ in range(5):
            assert login(client, phone, otp=wrong(outbox.last_code(phone)), ip=ip)["error"] == "BADCODE"
    assert login(client, phone, ip=ip)["error"] == "RATELIMIT"


@pytest.fixture(name="admin_app")
def _admin_app(make_app):
    return make_app(**{"limits.resend_cooldown_seconds": 0, "limits.sends_per_phone_per_hour": 100})


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_status_shows_why_a_phone_is_refused_and_until_when(admin_app):
    client, outbox = admin_app.test_client(), services_of(admin_app).sender
    lock_from(client, outbox)
    result = run(admin_app, "status", "+1 800 555 1234")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "1800•••••34" in out and PHONE not in out
    assert re.search(rf"fail-ip \(from {ATTACKER}\)\s+10/10\s+2[34]h \d\dm\s+REFUSING", out), out
    assert re.search(r"fail\s+10/100\s+.*ok", out), out
    assert "refused" in out and "wrong" in out and ATTACKER in out  # the last events


def test_unblock_lets_the_next_login_through_at_once(admin_app):
    client, outbox = admin_app.test_client(), services_of(admin_app).sender
    lock_from(client, outbox)
    assert login(client, ip=ATTACKER)["error"] == "RATELIMIT"  # refused from this worker's memory now
    result = run(admin_app, "unblock", PHONE)
    # what was cleared (the keys hold the phone's keyed hash, shown masked)
    assert result.exit_code == 0 and f"fail-ip:{masked(PHONE)}:{ATTACKER}" in result.output
    assert login(client, ip=ATTACKER)["result"] == "OK"


def test_unblock_an_address(make_app):
    app = make_app(**{"limits.sends_per_ip_per_hour": 1})
    client = app.test_client()
    login(client, "12015550100", ip=ATTACKER)
    assert login(client, "12015550101", ip=ATTACKER)["error"] == "RATELIMIT"
    assert run(app, "unblock", "--ip", ATTACKER).exit_code == 0
    assert login(client, "12015550101", ip=ATTACKER)["result"] == "OK"


def test_events_filter_and_json(admin_app):
    client, outbox = admin_app.test_client(), services_of(admin_app).sender
    lock_from(client, outbox)
    login(client, "447911123456", ip="203.0.113.9")
    table = run(admin_app, "events", "--phone", PHONE).output
    assert table.count("wrong") == 10 and "4479" not in table
    lines = [json.loads(line) for line in run(admin_app, "events", "--result", "refused", "--json").output.splitlines()]
    assert lines and all(line["event"] == "refused" and line["client_ip"] == ATTACKER for line in lines)
    assert lines[0]["detail"].startswith("fail-ip retry_after=")
    by_ip = run(admin_app, "events", "--ip", "203.0.113.9", "--json").output.splitlines()
    assert [json.loads(line)["event"] for line in by_ip] == ["sent", "asked"]


@pytest.mark.parametrize("event", ["asked", "sent", "wrong", "refused"])
def test_every_event_the_trail_holds_can_be_asked_for_by_its_name(admin_app, event):
    """--result takes the names the trail stores (it used to take other names: asked, sent, wrong
    were refused as unknown, and its own names found nothing)."""
    client, outbox = admin_app.test_client(), services_of(admin_app).sender
    lock_from(client, outbox)
    found = run(admin_app, "events", "--result", event, "--json")
    assert found.exit_code == 0, found.output
    assert {json.loads(line)["event"] for line in found.output.splitlines()} == {event}


def test_unblock_status_and_events_take_a_password_users_id_as_typed(make_app, tmp_path):
    """For a password login the counters are about the account (user:ann); the commands take the id
    as the user types it, in any look-alike form (unblock ann cleared nothing before)."""
    app = make_app(**user_table(tmp_path), **{"limits.failures_per_phone_per_ip_per_day": 3})
    client = app.test_client()
    for _ in range(3):
        post(client, {"op": "login", "appid": APPID, "user": "Ann", "password": "wrong"})
    assert post(client, {"op": "login", "appid": APPID, "user": "ann", "password": "x"})["error"] == "RATELIMIT"
    assert "REFUSING" in run(app, "status", "ANN").output
    assert run(app, "events", "--phone", "ａｎｎ").output.count("wrong") == 3
    done = run(app, "unblock", "Ann")
    assert done.exit_code == 0 and "cleared 2 counter(s)" in done.output
    assert f"fail-ip:{masked('user:ann')}:" in done.output
    assert post(client, {"op": "login", "appid": APPID, "user": "ann", "password": "x"})["error"] == "BADLOGIN"


def test_no_control_character_of_a_field_reaches_the_terminal(admin_app):
    client = admin_app.test_client()
    forged = "evil\n2026-01-01 forged line\x1b[2J"
    # an app id with control characters is refused before any work: it never reaches the trail
    assert post(client, {"op": "login", "appid": forged, "phone": PHONE})["error"] == "BADAPPID"
    assert run(admin_app, "events", "--phone", PHONE).output.strip() == "(none)"
    # a row that holds them anyway (written by an older version) is shown escaped
    services = services_of(admin_app)
    subject = services.auditor.subject(PHONE)
    services.store.record(
        [Event(services.now(), subject, masked(PHONE), "asked", "", "phone", forged, "1.2.3.4", "")], 3600
    )
    table = run(admin_app, "events", "--phone", PHONE).output
    assert "\x1b" not in table and "forged" in table and len(table.strip().splitlines()) == 2  # header, asked
    assert "\\n2026-01-01" in table and "\\x1b[2J" in table  # shown escaped


@pytest.mark.parametrize(
    "args",
    [
        ["events", "--since", "yesterday-ish"],
        ["events", "--result", "exploded"],
        ["events", "--limit", "many"],
        ["status", "12"],
        ["unblock"],
        ["block", "15550001111; DROP TABLE"],
    ],
)
def test_a_bad_argument_is_one_line_and_a_non_zero_exit(admin_app, args):
    result = run(admin_app, *args)
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("Error: "), result.output


def test_a_blocked_number_is_refused_before_any_sms(admin_app):
    client, outbox = admin_app.test_client(), services_of(admin_app).sender
    result = run(admin_app, "block", "1800555*", "--note", "pumping")
    assert result.exit_code == 0 and "1800555*" in result.output and "pumping" in result.output
    assert login(client)["error"] == "BADPHONE"
    assert outbox.outbox == []
    assert login(client, "12015550100")["result"] == "OK"  # not under the prefix
    run(admin_app, "allow", PHONE)  # the longer pattern wins
    assert login(client)["result"] == "OK"
    run(admin_app, "allow", "--remove", PHONE)
    assert "1800555*" in run(admin_app, "block").output
    assert login(client)["error"] == "BADPHONE"


def test_an_allowed_number_skips_the_address_caps_but_not_the_attempts(make_app):
    app = make_app(**{"limits.sends_per_ip_per_hour": 1, "limits.resend_cooldown_seconds": 0})
    client, outbox = app.test_client(), services_of(app).sender
    run(app, "allow", "+18005551234")
    for _ in range(3):
        assert login(client, ip=ATTACKER)["result"] == "OK"  # past the per-address cap of 1
    code = outbox.last_code(PHONE)
    for _ in range(5):
        login(client, otp=wrong(code), ip=ATTACKER)
    assert login(client, otp=code, ip=ATTACKER)["error"] == "BADCODE"  # the code died after 5


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Pacific/Kiritimati"])
def test_test_numbers_are_listed(make_app, monkeypatch, zone):
    """The end date as given, in UTC, whatever the machine's time zone (west of UTC it printed the
    day before under the "until (UTC)" header)."""
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    numbers = {"15550001111": "123456", "15550002222": {"code": "1", "until": "2027-06-30"}}
    app = make_app(**{"phones.test_numbers": numbers})
    out = run(app, "test-numbers").output
    monkeypatch.delenv("TZ")
    time.tzset()
    assert re.search(r"15550001111\s+always", out) and re.search(r"15550002222\s+2027-06-30", out)
    assert "123456" not in out


# -- real workers and nodes ------------------------------------------------------------------------


def post_from(port, body, source):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        conn.request("POST", "/", body=json.dumps(body), headers={"Content-Type": "application/json"})
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def codes_in(*services):
    return [code for s in services for code in re.findall(rf"login code for {PHONE}: (\d+)", s.log())]


def lock_and_unblock(services, env):
    """Lock PHONE out for one address through real workers, let every worker remember the refusal,
    unblock from a separate process: every next request from that address goes through."""
    ports = [s.port for s in services]
    ask = {"op": "login", "phone": PHONE, "appid": "a"}
    for n in range(2):
        assert post_from(ports[n % len(ports)], ask, "127.0.0.66")["result"] == "OK"
        code = codes_in(*services)[-1]
        for i in range(5):
            answer = post_from(ports[i % len(ports)], {**ask, "otp": wrong(code)}, "127.0.0.66")
            assert answer["error"] == "BADCODE"
    refused = [post_from(ports[i % len(ports)], ask, "127.0.0.66")["error"] for i in range(24)]
    assert set(refused) == {"RATELIMIT"}  # every worker of every node has seen the refusal
    done = run_flask(["unblock", PHONE], env, ROOT)
    assert done.returncode == 0 and "cleared" in done.stdout, done.stdout + done.stderr
    answers = [post_from(ports[i % len(ports)], ask, "127.0.0.66")["result"] for i in range(12)]
    assert answers == ["OK"] * 12


@pytest.mark.slow
def test_unblock_works_at_once_on_four_workers(tmp_path):
    fake = FakeMesibo(APP_TOKEN)
    env = {
        "MESIBO_APP_TOKEN": APP_TOKEN,
        "MESIBO_API_URL": fake.url,
        "OTP_SECRET": OTP_SECRET,
        "DATABASE_URL": f"sqlite:///{tmp_path}/workers.db",
        "MESSENGER_SENDER_NAME": "log",
        "MESSENGER_LIMITS_RESEND_COOLDOWN_SECONDS": "0",
        "MESSENGER_LIMITS_SENDS_PER_PHONE_PER_HOUR": "1000",
    }
    service = Service(tmp_path, env, workers=4)
    try:
        lock_and_unblock([service], clean_environment(**env))
    finally:
        service.stop()
        fake.stop()


@pytest.mark.slow
@pytest.mark.skipif(not postgres_url(), reason="TEST_DATABASE_URL is not set: the two-node test needs PostgreSQL")
def test_unblock_works_at_once_on_two_nodes(tmp_path):
    fake = FakeMesibo(APP_TOKEN)
    with postgres_schema("admin") as url:
        env = {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": url,
            "MESSENGER_SENDER_NAME": "log",
            "MESSENGER_LIMITS_RESEND_COOLDOWN_SECONDS": "0",
            "MESSENGER_LIMITS_SENDS_PER_PHONE_PER_HOUR": "1000",
        }
        nodes = [Service(tmp_path, env, workers=2), Service(tmp_path, env, workers=2)]
        try:
            lock_and_unblock(nodes, clean_environment(**env))
        finally:
            for node in nodes:
                node.stop()
            fake.stop()
