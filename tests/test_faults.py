"""Faults, for real: a mesibo that trickles or stalls, a worker killed mid-login. Each bounded in time."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time

import pytest
import requests
from helpers import APP_TOKEN, OTP_SECRET, PHONE, login, services_of, unique_phone

from app.store.sqlite import _WriterLock
from tools.processes import FakeMesibo, PostgresCluster, Service

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
    fake_mesibo.control(fail="none")
    answer = login(client, otp=outbox.last_code(PHONE))  # the code was given back: it still works
    assert answer["result"] == "OK", answer
    fake_mesibo.control(fail=fault)  # logout's revoke waits no longer, and the answer is OK
    started = time.monotonic()
    assert client.post("/", json={"op": "logout", "token": answer["token"]}).get_json()["result"] == "OK"
    assert time.monotonic() - started < 2.5
    assert fake_mesibo.stats()["userset-received"] == 1


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


@pytest.fixture(name="small_disk")
def _small_disk(tmp_path):
    """A 16 MiB tmpfs of the test's own, for a database that can run out of room or become read-only."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _ready(client):
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 2.0
    return response.status_code, response.get_json()["database"]


def test_a_deleted_database_file_is_made_anew_without_a_restart(make_app, small_disk):
    """Deleted under a running service (an operator's mistake): /readyz stays ready, the next login
    makes the file and its schema anew and succeeds; no restart, no reload."""
    app = make_app(**{"database.url": f"sqlite:///{small_disk}/messenger.db"})
    client, services = app.test_client(), services_of(app)
    assert login(client)["result"] == "OK"
    for name in small_disk.glob("messenger.db*"):
        name.unlink()
    assert _ready(client) == (200, "ok")
    assert login(client, phone="447911123456")["result"] == "OK"
    assert (small_disk / "messenger.db").exists() and services.store.codes_of(services.codes.blind("447911123456"))
    services.store.close()


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_store_that_cannot_be_written_is_unready_and_recovers_by_itself(make_app, small_disk, fault):
    """While the disk is full or read-only: /readyz 503 with the reason, logins the envelope; once the
    cause is gone, ready and logging in again - the same app, no restart, no reload."""
    app = make_app(**{"database.url": f"sqlite:///{small_disk}/messenger.db"})
    client, services = app.test_client(), services_of(app)
    assert login(client)["result"] == "OK"
    assert _ready(client) == (200, "ok")
    if fault == "read-only":
        services.store.close()  # a file open for writing would keep the remount from happening
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        why = "not writable"
    elif fault == "full":
        with open(small_disk / "filler", "wb") as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * (1 << 20))
        why = "disk is full"
    status, problem = _ready(client)
    assert status == 503 and why in problem
    answer = login(client, phone="447911123456")  # a login then fails with the envelope, not a 500
    assert answer["result"] == "FAIL"
    if fault == "read-only":
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    else:
        (small_disk / "filler").unlink()
    assert _ready(client) == (200, "ok")
    assert login(client, phone="447911123457")["result"] == "OK"
    services.store.close()


def test_a_deleted_lock_file_is_taken_anew(tmp_path):
    """Writers queue on a lock file beside the database; deleted under running workers, a worker
    that started later locks a new file at the path, and one holding the old file would exclude
    nobody: each turn checks it holds the file at the path, and takes that one."""
    path = str(tmp_path / "messenger.db.lock")
    early = _WriterLock(path, timeout=0.3)
    with early:
        pass
    os.unlink(path)
    late = _WriterLock(path, timeout=0.3)  # a worker started after the deletion
    with late:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"), early:
            pass
        assert time.monotonic() - started >= 0.25  # it waited for the other writer's turn
    with early:  # and takes its turn once the other is done
        assert os.stat(path).st_ino == os.fstat(early._fd).st_ino
    early.close()
    late.close()


@pytest.fixture(name="cluster")
def _cluster():
    if not PostgresCluster.available():
        pytest.skip("PostgreSQL's initdb is not installed")
    cluster = PostgresCluster()
    yield cluster
    cluster.destroy()


def test_postgresql_stopped_and_started_under_load(make_app, cluster, capsys):
    """While the database is down every login answers the envelope in seconds and /readyz says so;
    once it is back, logins succeed again within seconds, without a restart."""
    app = make_app(
        **{
            "database.url": cluster.url,
            "database.pool_timeout": 2.0,
            "database.connect_timeout": 2.0,
            "limits.sends_per_ip_per_hour": 0,
            "limits.resend_cooldown_seconds": 0,
            "limits.sends_per_phone_per_hour": 0,
        }
    )
    answers, stop = [], threading.Event()

    def load():
        client = app.test_client()
        while not stop.is_set():
            started = time.monotonic()
            answer = login(client, phone=unique_phone())  # always the envelope (helpers.post checks it)
            answers.append((started, time.monotonic() - started, answer.get("error", "OK")))
            time.sleep(0.05)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1)
        cluster.stop()
        down_at = time.monotonic()
        time.sleep(6)
        ready_status, _ = _ready(app.test_client())
        restart_at = time.monotonic()
        cluster.start()
        up_at = time.monotonic()
        deadline = up_at + 20
        while time.monotonic() < deadline and not any(s > up_at and e == "OK" for s, _, e in answers):
            time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    # logins that began while it was down and ended before it came back all failed, with the envelope
    window = [(took, e) for s, took, e in answers if down_at + 0.5 < s and s + took < restart_at]
    during = [took for took, _ in window]
    assert during and all(e != "OK" for _, e in window)
    assert ready_status == 503
    assert max(during) < 5.0, f"slowest answer while down: {max(during):.1f} s"
    recovered = min((s + took for s, took, e in answers if s > up_at and e == "OK"), default=None)
    assert recovered is not None and recovered - up_at < 10
    with capsys.disabled():
        print(
            f"\nPostgreSQL down: slowest answer {max(during):.2f} s over {len(during)} logins; "
            f"first login after it returned: {recovered - up_at:.2f} s"
        )


def test_workers_keep_serving_without_metrics_when_their_folder_is_full(tmp_path, small_disk, fake_mesibo):
    """A full metrics filesystem used to kill every new worker with SIGBUS, in a loop."""
    with open(small_disk / "filler", "wb") as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * (1 << 20))
    service = Service(
        tmp_path,
        {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake_mesibo.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/metrics.db",
            "MESSENGER_SENDER_NAME": "log",
            "PROMETHEUS_MULTIPROC_DIR": str(small_disk),
        },
    )
    try:
        for n in range(10):
            body = {"op": "login", "phone": f"1201555{n:04d}", "appid": "a"}
            assert requests.post(service.url, json=body, timeout=10).json()["result"] == "OK"
        time.sleep(0.5)
        log = service.log()
        assert "SIGBUS" not in log and "was sent" not in log and log.count("Booting worker") == 2
        assert "metrics off in process" in log
        scrape = requests.get(f"{service.url}metrics", timeout=10)  # not an empty 200: a failed scrape
        assert scrape.status_code == 503 and "full" in scrape.json()["metrics"]
    finally:
        service.stop()


def test_a_trickling_sms_webhook_costs_a_code_request_at_most_its_deadline(make_app, fake_mesibo):
    """The senders' sessions keep the same total deadline: connect (3.05 s) + sender.timeout."""
    fake_mesibo.control(fail="trickle")  # the stand-in answers any path; here it plays the webhook
    app = make_app(
        **{
            "sender.name": "webhook",
            "sender.webhook.url": fake_mesibo.url,
            "sender.webhook.secret": "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3",
            "sender.timeout": 1.0,
        }
    )
    started = time.monotonic()
    answer = login(app.test_client())
    assert answer["error"] == "SENDFAIL" and time.monotonic() - started < 3.05 + 1.0 + 0.5


@pytest.mark.parametrize("fault", ["hang", "trickle", "stall", "refused"])
def test_the_log_tells_a_mesibo_that_does_not_answer_from_one_that_cannot_be_reached(fake_mesibo, fault):
    """A mesibo that accepts and never answers, or trickles, was logged as "cannot reach mesibo
    (ConnectionError)" - the operator looked at the network instead of at mesibo."""
    from app.mesibo import MesiboClient, MesiboError
    from app.settings import MesiboSettings
    from tools.processes import free_port

    url = f"http://127.0.0.1:{free_port()}/backend/" if fault == "refused" else fake_mesibo.url
    client = MesiboClient(MesiboSettings(api_url=url, app_token=APP_TOKEN, connect_timeout=0.5, read_timeout=1.0))
    if fault != "refused":
        fake_mesibo.control(fail=fault)
    with pytest.raises(MesiboError) as failure:
        client.add_user("12015550123", "a")
    expected = "cannot reach mesibo" if fault == "refused" else "mesibo did not answer in time"
    assert str(failure.value).startswith(expected), str(failure.value)
