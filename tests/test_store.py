"""The store's guarantees, on every engine: single use, attempts, atomic limits, housekeeping, migrations.

SQLite always runs. PostgreSQL runs when TEST_DATABASE_URL is set (``.ci/run`` sets it); each
test gets its own schema there.
"""

from __future__ import annotations

import uuid

import pytest
from helpers import postgres_url, together

from app.store import SCHEMA_VERSION, Blocked, CodeRecord, Listing, Refused, Rule
from app.store.sql import MIGRATIONS
from app.store.sqlite import SqliteStore

NOW = 1_800_000_000


def _postgres_store(schema_holder):
    import psycopg

    from app.store.postgres import PostgresStore

    url = postgres_url()
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    schema_holder.append(schema)
    separator = "&" if "?" in url else "?"
    return PostgresStore(f"{url}{separator}options=-csearch_path%3D{schema}", pool_size=20)


def _drop_schema(schema):
    import psycopg

    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


ENGINES = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(
            not postgres_url(), reason="TEST_DATABASE_URL is not set: PostgreSQL store tests not run"
        ),
    ),
]


@pytest.fixture(name="make_store", params=ENGINES)
def _make_store(request, tmp_path):
    """Make an empty store (not migrated) on the engine under test."""
    made, schemas = [], []

    def make():
        if request.param == "sqlite":
            store = SqliteStore(str(tmp_path / "store.db"))
        else:
            store = _postgres_store(schemas) if not made else made[0].__class__(made[0].url, pool_size=20)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    for schema in schemas:
        _drop_schema(schema)


@pytest.fixture(name="store")
def _store(make_store):
    store = make_store()
    store.migrate()
    return store


def code(address="15551230000", appid="app", digest="d" * 64, expires_at=NOW + 300):
    return CodeRecord(address, appid, digest, expires_at)


def hit(store, rules, now):
    """Count against the rules: the refusal, or None when they all let it pass."""
    try:
        store.hit(rules, now)
    except Refused as refusal:
        return refusal
    return None


def answer(store, right, address="15551230000", appid="app", now=NOW, **kwargs):
    """Check an answer that is right or wrong against the live code."""
    return store.check_code(address, appid, [], now, 5, lambda digest: right, **kwargs)


def test_a_right_answer_consumes_the_code(store):
    store.issue(code(), [], NOW)
    checked = answer(store, True)
    assert isinstance(checked, CodeRecord) and checked.digest == "d" * 64 and checked.attempts == 1
    assert answer(store, True) is None


def test_the_digest_is_handed_to_the_comparison(store):
    store.issue(code(digest="e" * 64), [], NOW)
    seen = []
    store.check_code("15551230000", "app", [], NOW, 5, lambda digest: seen.append(digest) or False)
    assert seen == ["e" * 64]


def test_a_new_code_replaces_the_old_and_resets_attempts(store):
    store.issue(code(digest="a" * 64), [], NOW)
    assert answer(store, False) is None
    store.issue(code(digest="b" * 64), [], NOW)
    checked = store.check_code("15551230000", "app", [], NOW, 5, lambda digest: digest == "b" * 64)
    assert checked.digest == "b" * 64 and checked.attempts == 1


def test_expired_code_cannot_be_checked(store):
    store.issue(code(expires_at=NOW + 10), [], NOW)
    assert answer(store, True, now=NOW + 10) is None


def test_attempts_are_capped_under_concurrency(store):
    store.issue(code(), [], NOW)
    results = together(20, lambda: answer(store, False, failures=[("fail:x", 86400)]))
    assert results == [None] * 20
    assert store.count([("fail:x", 86400)], NOW) == [6]  # five wrong answers were compared, fifteen found no code
    assert answer(store, True) is None  # the code is dead


def test_exactly_one_of_many_concurrent_right_answers_wins(store):
    for round_ in range(3):
        address = f"1555123000{round_}"
        store.issue(code(address=address), [], NOW)
        results = together(12, lambda address=address: answer(store, True, address=address))
        assert sum(isinstance(result, CodeRecord) for result in results) == 1
        assert results.count(None) == 11


def test_a_wrong_answer_counts_a_failure(store):
    store.issue(code(), [], NOW)
    lock = Rule("fail:x", 2, 86400, count=False)
    answer(store, False, failures=[("fail:x", 86400)])
    assert hit(store, [lock], NOW) is None
    answer(store, False, failures=[("fail:x", 86400)])
    assert hit(store, [lock], NOW).key == "fail:x"


def test_rules_refuse_a_check_before_any_attempt_is_spent(store):
    store.issue(code(), [], NOW)
    rule = Rule("check-ip:x", 1, 600)
    assert store.check_code("15551230000", "app", [rule], NOW, 5, lambda d: False) is None
    with pytest.raises(Refused):
        store.check_code("15551230000", "app", [rule], NOW, 5, lambda d: True)
    assert isinstance(answer(store, True), CodeRecord)  # the refused check spent nothing: 2 of 5 attempts used


def test_release_makes_a_claimed_code_usable_again(store):
    store.issue(code(), [], NOW)
    checked = answer(store, True)
    store.release(checked)
    again = answer(store, True)
    assert again.digest == checked.digest and again.attempts == 1  # the successful try is not held against it


def test_a_claimed_code_is_refused_until_its_claim_lapses(store):
    """A worker that dies between the right answer and the token leaves a claim, not a spent code."""
    store.issue(code(), [], NOW)
    assert answer(store, True, claim_seconds=15) is not None
    assert answer(store, True, now=NOW + 14) is None  # claimed: a second login cannot have it
    assert answer(store, True, now=NOW + 15) is not None  # the claim lapsed: the code works again


def test_consume_spends_the_code(store):
    store.issue(code(), [], NOW)
    store.consume(answer(store, True, claim_seconds=1))
    assert answer(store, True, now=NOW + 100) is None


def test_release_and_consume_never_touch_a_newer_code(store):
    store.issue(code(digest="a" * 64), [], NOW)
    checked = answer(store, True)
    store.issue(code(digest="b" * 64), [], NOW)
    store.release(checked)
    store.consume(checked)
    assert answer(store, True).digest == "b" * 64


def test_hit_counts_up_to_the_limit_then_refuses_with_the_wait(store):
    rule = Rule("send:x", 3, 3600)
    assert [hit(store, [rule], NOW + i) for i in range(3)] == [None, None, None]
    refusal = hit(store, [rule], NOW + 100)
    assert isinstance(refusal, Refused) and refusal.key == "send:x"
    assert refusal.retry_after == 3500
    assert hit(store, [rule], NOW + 3600) is None  # a new window


def test_a_refused_hit_counts_nothing(store):
    """All or nothing: a refusal by one rule must not use up the others."""
    tight, loose = Rule("cooldown:x", 1, 60), Rule("send:x", 5, 3600)
    assert hit(store, [tight, loose], NOW) is None
    for i in range(10):
        assert hit(store, [tight, loose], NOW + 1 + i) is not None
    # only 1 of 5 used: the ten refused hits counted nothing
    assert [hit(store, [loose], NOW + 20) for _ in range(4)] == [None] * 4
    assert hit(store, [loose], NOW + 20) is not None


def test_refusal_reports_the_longest_wait(store):
    hit(store, [Rule("a", 1, 60), Rule("b", 1, 3600)], NOW)
    assert hit(store, [Rule("a", 1, 60), Rule("b", 1, 3600)], NOW + 1).retry_after == 3599


def test_give_back_undoes_one_hit(store):
    rule = Rule("cooldown:y", 1, 60)
    hit(store, [rule], NOW)
    store.give_back([rule], NOW)
    assert hit(store, [rule], NOW + 1) is None


def test_check_only_rule_refuses_at_the_limit_without_counting(store):
    lock = Rule("fail:x", 2, 86400, count=False)
    assert hit(store, [lock], NOW) is None
    store.count([("fail:x", 86400)], NOW)
    assert hit(store, [lock], NOW) is None
    store.count([("fail:x", 86400)], NOW + 5)
    refusal = hit(store, [lock], NOW + 10)
    assert refusal.retry_after == 86390
    assert hit(store, [lock], NOW + 86400) is None


def test_limit_holds_under_concurrency(store):
    rule = Rule("send-all", 5, 3600)
    results = together(40, lambda: hit(store, [rule], NOW))
    assert results.count(None) == 5


def test_zero_limit_is_off(store):
    assert all(hit(store, [Rule("off", 0, 60)], NOW) is None for _ in range(5))


def test_purge_removes_only_what_expired_in_batches(store):
    for i in range(25):
        store.issue(code(address=f"1555000{i:04d}", expires_at=NOW + (10 if i % 2 else 1000)), [], NOW)
        hit(store, [Rule(f"k{i}", 5, 10 if i % 2 else 1000)], NOW)
    assert store.purge(NOW + 100, batch=4) == 24
    assert answer(store, True, address="15550000000", now=NOW + 100) is not None  # still live
    assert store.purge(NOW + 100, batch=4) == 0


def test_migrate_from_empty_and_again(make_store):
    store = make_store()
    assert store.schema_version() == 0
    assert store.migrate() == (0, SCHEMA_VERSION)
    assert store.migrate() == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert store.schema_version() == SCHEMA_VERSION


@pytest.mark.parametrize("start", range(len(MIGRATIONS)))
def test_migrate_from_each_earlier_version(make_store, start):
    store = make_store()
    store.migrate(target=start)
    assert store.schema_version() == start
    store.migrate()
    assert store.schema_version() == SCHEMA_VERSION
    store.issue(code(), [], NOW)


def test_concurrent_migrations_apply_once(make_store):
    stores = [make_store() for _ in range(4)]
    queue = list(stores)
    results = together(4, lambda: queue.pop().migrate())
    assert sorted(results)[0] == (0, SCHEMA_VERSION)
    assert stores[0].schema_version() == SCHEMA_VERSION


def test_purge_can_stop_after_a_number_of_batches(store):
    for i in range(10):
        hit(store, [Rule(f"k{i}", 5, 10)], NOW)
    assert store.purge(NOW + 100, batch=3, max_batches=1) == 3
    assert store.purge(NOW + 100, batch=3) == 7


@pytest.mark.parametrize("batch", [0, -1])
def test_purge_refuses_a_batch_below_one(store, batch):
    """A batch of 0 would delete nothing and never end."""
    with pytest.raises(ValueError, match="at least 1"):
        store.purge(NOW, batch=batch)


def test_the_lists_are_asked_in_the_sends_own_transaction(store):
    """A blocked address is refused with nothing counted or stored; an allowed one is counted against
    its own rules; the longest pattern decides (a number beats its prefix)."""
    usual, allowed = [Rule("usual:x", 1, 3600)], [Rule("allowed:x", 5, 3600)]
    store.set_policy("1555*", "block", "", NOW)
    with pytest.raises(Blocked):
        store.issue(code(), usual, NOW, Listing("15551230000", allowed))
    assert store.codes_of("15551230000") == [] and store.counters_of(["usual:x", "allowed:x"]) == []
    store.set_policy("15551230000", "allow", "", NOW)
    assert store.issue(code(), usual, NOW, Listing("15551230000", allowed)) == allowed
    assert [key for key, _, _ in store.counters_of(["usual:x", "allowed:x"])] == ["allowed:x"]
    assert store.policy("15551239999") == "block" and store.policy("1666") == ""


def test_step_2_is_not_refused_for_a_blocked_address(store):
    """A block stops new codes; an answer for a code sent before the block is still checked."""
    store.issue(code(), [], NOW)
    store.set_policy("15551230000", "block", "", NOW)
    listing = Listing("15551230000", [], refuse_blocked=False)
    found = store.check_code("15551230000", "app", [], NOW, 5, lambda digest: True, listing=listing)
    assert found is not None


def test_every_file_the_sqlite_store_makes_is_the_owners_alone(tmp_path):
    """Whoever starts the service with whatever umask: the database (phones, user ids) and the files
    beside it are 0600 (they were 0644 outside systemd), its new folder 0700."""
    import os
    import stat

    from app.store import Rule
    from app.store.sqlite import SqliteStore

    old = os.umask(0o022)
    try:
        store = SqliteStore(str(tmp_path / "new" / "messenger.db"))
        store.migrate()
        store.hit([Rule("send:12015550123", 5, 3600)], 1_800_000_000)
        store.clear_counters(["send:12015550123"])
    finally:
        os.umask(old)
    made = sorted((tmp_path / "new").iterdir())
    assert {path.name for path in made} >= {
        "messenger.db",
        "messenger.db-wal",
        "messenger.db-shm",
        "messenger.db.lock",
        "messenger.db.generation",
    }
    assert {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in made} == {path.name: "0o600" for path in made}
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    store.close()
