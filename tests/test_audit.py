"""The audit trail: every login event, with who/when/where, findable by phone - and nothing secret."""

from __future__ import annotations

import time

import pytest
import requests
from helpers import API_URL, APPID, ENGINES, PHONE, holder_of, login, mint_ok, postgres_schema, services_of, wrong


@pytest.fixture(name="engine_app", params=ENGINES)
def _engine_app(request, make_app):
    if request.param == "sqlite":
        yield make_app(**{"logging.requests": False})
        return
    with postgres_schema("audit") as url:
        app = make_app(**{"database.url": url})
        yield app
        services_of(app).store.close()


def trail(app, address=PHONE):
    services = services_of(app)
    return list(reversed(services.store.events(subject=services.auditor.subject(address), limit=100)))


def test_a_login_leaves_its_events_with_who_when_and_where(engine_app, mesibo_api, clock):
    mint_ok(mesibo_api, "user-token-777")
    client, outbox = engine_app.test_client(), services_of(engine_app).sender
    login(client, ip="203.0.113.5", headers={"X-Request-ID": "req-1"})
    code = outbox.last_code(PHONE)
    login(client, otp=wrong(code), ip="203.0.113.5")
    answer = login(client, otp=code, ip="203.0.113.5", headers={"X-Request-ID": "req-3"})
    assert answer["result"] == "OK"
    events = trail(engine_app)
    assert [e.event for e in events] == ["asked", "sent", "wrong", "proved", "minted"]
    first = events[0]
    assert first.at == int(clock.now) and first.request_id == "req-1" and first.client_ip == "203.0.113.5"
    assert first.appid == APPID and first.method == "phone" and first.shown == "1800•••••34"
    assert events[1].detail.startswith("memory ") and len(events[1].detail) > len("memory ")  # provider, message id
    assert events[-1].request_id == "req-3"
    # nothing secret in any column: not the phone in clear, not the code, not the token
    for event in events:
        text = " ".join(str(value) for value in vars(event).values())
        assert PHONE not in text and code not in text and "user-token-777" not in text


def test_refusals_failed_sends_and_mesibo_errors_are_recorded(engine_app, mesibo_api):
    client, outbox = engine_app.test_client(), services_of(engine_app).sender
    outbox.fail_next = 1
    login(client)
    login(client)
    login(client)  # the cooldown refuses
    mesibo_api.post(API_URL, body=requests.ConnectionError("down"))
    login(client, otp=outbox.last_code(PHONE))
    events = [(e.event, e.detail) for e in trail(engine_app)]
    assert events[0] == ("asked", "") and events[1][0] == "send_failed" and events[1][1] == "memory TEST"
    assert ("refused", "cooldown retry_after=60") in events
    assert ("mesibo_error", "BADAPP") in events


def test_events_are_kept_for_the_retention_and_then_purged(make_app, clock):
    app = make_app(**{"audit.retention_days": 2})
    login(app.test_client())
    store = services_of(app).store
    assert len(trail(app)) == 2
    clock.advance(2 * 86400 - 10)
    store.purge(int(clock.now))
    assert len(trail(app)) == 2
    clock.advance(20)
    store.purge(int(clock.now))
    assert trail(app) == []


def test_the_trail_can_be_turned_off(make_app):
    app = make_app(**{"audit.enabled": False})
    login(app.test_client())
    assert trail(app) == []


def test_the_trail_is_gathered_and_written_many_to_a_commit(make_app):
    """The default: a thread of the worker writes what requests noted, every flush_seconds."""
    app = make_app(**{"audit.flush_seconds": 0.2})
    client = app.test_client()
    for n in range(3):
        login(client, f"1201555{n:04d}")
    auditor = services_of(app).auditor
    deadline = time.monotonic() + 5
    while len(services_of(app).store.events(limit=100)) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(services_of(app).store.events(limit=100)) == 6
    rows = audit_rows(1200)
    auditor.write(rows)  # more than one statement's worth, written in one go by flush()
    auditor.flush()
    assert len(services_of(app).store.events(limit=5000)) == 6 + 1200


def audit_rows(count):
    from app.store.audit import Event

    return [
        Event(1_800_000_000 + n, "s" * 32, "1800•••34", "sent", "memory x", "phone", "a", "192.0.2.1", "r")
        for n in range(count)
    ]


def test_events_a_write_failed_for_are_written_later_and_counted(make_app, tmp_path, request):
    """The store is locked by another process while a step 1 finishes: the login still succeeds, its
    events wait (counted as retried in the metric) and are written with the next request's."""

    app = make_app(**{"database.busy_timeout_ms": 100, "metrics.enabled": True})
    client = app.test_client()
    assert login(client)["result"] == "OK"
    holder = holder_of(tmp_path / "test.db", request)
    services = services_of(app)
    record = services.store.record

    def locked_then_record(rows, keep):  # the lock is taken just as the trail is written
        holder.execute("BEGIN EXCLUSIVE")
        try:
            record(rows, keep)
        finally:
            holder.execute("ROLLBACK")

    services.store.record = locked_then_record  # type: ignore[method-assign]
    assert login(client, phone="447911123456")["result"] == "OK"
    services.store.record = record  # type: ignore[method-assign]
    assert trail(app, "447911123456") == []
    assert 'messenger_audit_events_unwritten_total{outcome="retried"} 2.0' in client.get("/metrics").text
    assert login(client, phone="447911123457")["result"] == "OK"
    assert [e.event for e in trail(app, "447911123456")] == ["asked", "sent"]
