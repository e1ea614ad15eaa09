"""A store held by someone else (a backup, an operator's shell, a table locked by hand) delays a login
by the configured wait at most, and the login answers the envelope - never as long as the lock lasts."""

from __future__ import annotations

import time

import pytest
from helpers import PHONE, holder_of, post, postgres_schema, postgres_url, together, unique_phone

pytestmark = pytest.mark.fault


def timed_step_1(client):
    began = time.monotonic()
    answer = post(client, {"op": "login", "appid": "app", "phone": unique_phone()})
    return time.monotonic() - began, answer


def test_logins_queued_behind_a_locked_sqlite_each_wait_the_busy_timeout_at_most(make_app, tmp_path, request):
    """Eight logins at once while another process holds SQLite's write lock: each answers after about
    the busy timeout (they used to queue on this process's writer lock, one busy timeout after another)."""
    app = make_app(**{"database.busy_timeout_ms": 300})
    client = app.test_client()
    assert post(client, {"op": "login", "appid": "app", "phone": PHONE})["result"] == "OK"  # the file exists
    holder = holder_of(tmp_path / "test.db", request)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        results = together(8, lambda: timed_step_1(client))
    finally:
        holder.execute("ROLLBACK")
    assert all(answer["result"] == "FAIL" and answer["op"] == "login" for _, answer in results)
    assert max(took for took, _ in results) < 1.0, sorted(round(took, 2) for took, _ in results)
    assert timed_step_1(client)[1]["result"] == "OK"  # and the store works again once the lock is gone


@pytest.mark.postgres
@pytest.mark.skipif(not postgres_url(), reason="TEST_DATABASE_URL is not set")
def test_a_table_locked_by_hand_in_postgresql_fails_a_login_after_the_lock_timeout(make_app):
    import psycopg

    with postgres_schema("waits") as url:
        app = make_app(**{"database.url": url, "database.busy_timeout_ms": 500})
        client = app.test_client()
        assert timed_step_1(client)[1]["result"] == "OK"
        with psycopg.connect(url) as holder:
            holder.execute("LOCK TABLE codes IN ACCESS EXCLUSIVE MODE")
            took, answer = timed_step_1(client)
        assert answer["result"] == "FAIL" and answer["op"] == "login"
        assert took < 2.0, took
        assert timed_step_1(client)[1]["result"] == "OK"


@pytest.mark.slow
def test_readiness_is_503_while_another_process_holds_sqlite_and_200_after(make_app, tmp_path, request):
    app = make_app()
    client = app.test_client()
    assert post(client, {"op": "login", "appid": "app", "phone": PHONE})["result"] == "OK"
    assert client.get("/readyz").status_code == 200
    holder = holder_of(tmp_path / "test.db", request)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        began = time.monotonic()
        response = client.get("/readyz")
        assert time.monotonic() - began < 2.5
    finally:
        holder.execute("ROLLBACK")
    assert response.status_code == 503 and "locked" in response.get_json()["database"]
    assert client.get("/readyz").status_code == 200


@pytest.mark.slow
def test_the_wal_shrinks_again_after_a_long_reader(tmp_path, request):
    """A reader that holds a snapshot (a backup, an operator's shell) keeps SQLite from checkpointing,
    so the WAL grows while it reads; once it is done the WAL is cut back to the store's limit rather
    than keeping its largest size for good."""
    from app.store import CodeRecord
    from app.store.sqlite import SqliteStore

    path = tmp_path / "wal.db"
    store = SqliteStore(str(path))
    store.migrate()

    def write(count, start):
        for n in range(start, start + count):
            store.issue(CodeRecord(f"1201{n:07d}", "app", "d" * 64, 2_000_000_000), [], 1_800_000_000)

    reader = holder_of(path, request)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM codes").fetchall()  # a snapshot, held
    write(6000, 0)
    grown = (tmp_path / "wal.db-wal").stat().st_size
    reader.execute("COMMIT")
    reader.close()
    write(3000, 6000)  # enough for SQLite's automatic checkpoints to run again
    after = (tmp_path / "wal.db-wal").stat().st_size
    store.close()
    assert grown > 2 * SqliteStore.WAL_LIMIT_BYTES, grown
    assert after <= SqliteStore.WAL_LIMIT_BYTES, (grown, after)


@pytest.mark.slow
def test_a_gevent_worker_waiting_for_the_store_still_answers_everything_else(tmp_path):
    """Real gunicorn with the shipped (gevent) configuration, one worker: while another process holds
    the store's lock file, a login waits for it - and meanwhile the same worker answers /healthz at
    once (a blocking wait on the worker's one OS thread would hold every request of the worker)."""
    import fcntl
    import threading

    import requests
    from helpers import APP_TOKEN, OTP_SECRET

    from tools.processes import Service

    database = tmp_path / "held.db"
    service = Service(
        tmp_path,
        {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{database}",
            "MESSENGER_SENDER_NAME": "log",
            "MESSENGER_DATABASE_BUSY_TIMEOUT_MS": "3000",
        },
        workers=1,
    )
    try:
        body = {"op": "login", "appid": "app", "phone": unique_phone()}
        assert requests.post(service.url, json=body, timeout=10).json()["result"] == "OK"
        with open(f"{database}.lock", "a+b") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # as another worker mid-transaction, for 2 s
            answers = []
            login = threading.Thread(
                target=lambda: answers.append(
                    requests.post(service.url, json={**body, "phone": unique_phone()}, timeout=10).json()
                )
            )
            login.start()
            time.sleep(0.3)  # the login is waiting for the lock now
            began = time.monotonic()
            health = requests.get(f"{service.url}healthz", timeout=10)
            health_took = time.monotonic() - began
            time.sleep(1.7)
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            login.join(timeout=10)
        assert health.status_code == 200 and health_took < 1.0, health_took  # blocked, it waited >= 1.7 s
        assert answers and answers[0]["result"] == "OK"  # the login went on once the lock was free
    finally:
        service.stop()
