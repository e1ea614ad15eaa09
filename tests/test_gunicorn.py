"""The real service under gunicorn with several worker processes, against the stand-in for mesibo."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
import time

import pytest
import requests
from helpers import APP_TOKEN, OTP_SECRET, PUMPED_REGIONS, mobile_prefixes, postgres_schema, postgres_url, together

from tools.processes import FakeMesibo, Service

pytestmark = pytest.mark.slow

PHONE = "18005551234"


@pytest.fixture(name="fake_mesibo")
def _fake_mesibo():
    fake = FakeMesibo(APP_TOKEN)
    yield fake
    fake.stop()


@pytest.fixture(name="start_service")
def _start_service(tmp_path, fake_mesibo):
    started = []

    def start(workers=2, **env):
        base = {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake_mesibo.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/shared.db",
            "MESSENGER_SENDER_NAME": "log",
        }
        service = Service(tmp_path, {**base, **env}, workers=workers)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def code_lines(service):
    return re.findall(r"login code for (\d+): (\d+)", service.log())


def test_tutorial_flow_over_http(start_service, fake_mesibo):
    """The tutorial's curl body (unquoted keys) sends a code to the log; the code then mints a token."""
    service = start_service()
    first = requests.post(
        service.url,
        data='{op: "login", phone: "18005551234", appid: "com.messenger.appid"}',
        headers={"Content-Type": "application/json"},
        timeout=10,
    ).json()
    assert first["result"] == "OK" and first["op"] == "login"
    [(phone, code)] = code_lines(service)
    assert phone == PHONE
    second = requests.post(
        service.url, json={"op": "login", "phone": PHONE, "appid": "com.messenger.appid", "otp": code}, timeout=10
    ).json()
    assert second["result"] == "OK"
    assert second["token"] == fake_mesibo.stats()["tokens"][-1]["token"]
    assert APP_TOKEN not in service.log()


def test_send_cap_holds_across_four_workers(start_service):
    """50 concurrent code requests for one phone with a cap of 5 per hour: exactly 5 codes are sent."""
    service = start_service(
        workers=4, MESSENGER_LIMITS_RESEND_COOLDOWN_SECONDS="0", MESSENGER_LIMITS_SENDS_PER_IP_PER_HOUR="1000"
    )
    answers = together(
        50, lambda: requests.post(service.url, json={"op": "login", "phone": PHONE, "appid": "a"}, timeout=30).json()
    )
    assert len(answers) == 50
    assert sum(a["result"] == "OK" for a in answers) == 5
    refused = [a for a in answers if a["result"] == "FAIL"]
    assert {a["error"] for a in refused} == {"RATELIMIT"}
    assert all(isinstance(a["retry_after"], int) and 3500 < a["retry_after"] <= 3600 for a in refused)
    assert len(code_lines(service)) == 5
    serving_pids = set(re.findall(r"\[(\d+)\] app.requests", service.log()))
    assert len(serving_pids) >= 2  # the requests really were spread over several processes


def test_one_code_mints_one_token_across_four_workers(start_service, fake_mesibo):
    """20 concurrent right answers for one code: exactly one token is minted."""
    service = start_service(workers=4)
    requests.post(service.url, json={"op": "login", "phone": PHONE, "appid": "a"}, timeout=10)
    [(_, code)] = code_lines(service)
    answers = together(
        20,
        lambda: requests.post(
            service.url, json={"op": "login", "phone": PHONE, "appid": "a", "otp": code}, timeout=30
        ).json(),
    )
    assert sum(a["result"] == "OK" for a in answers) == 1
    assert {a.get("error") for a in answers if a["result"] == "FAIL"} == {"BADCODE"}
    assert fake_mesibo.stats()["useradd"] == 1


def test_metrics_on_a_separate_port_add_up_every_worker(start_service):
    """metrics.port: the gunicorn master serves /metrics for all workers; the service's port does not."""
    from tools.processes import free_port, wait_for_port

    metrics_port = free_port()
    service = start_service(workers=2, MESSENGER_METRICS_PORT=str(metrics_port))
    wait_for_port(metrics_port, service.process)
    for _ in range(20):
        requests.post(service.url, json={"op": "logout"}, timeout=10)
    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    [count] = re.findall(r'messenger_requests_total\{error="",op="logout",result="OK"\} (\S+)', text)
    assert float(count) == 20
    assert len(set(re.findall(r"\[(\d+)\] app.requests", service.log()))) >= 1
    assert requests.get(service.url + "metrics", timeout=10).status_code == 404


def _flask_check(tmp_path, fake_mesibo, token):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MESSENGER_", "MESIBO_", "OTP_"))}
    env.update(
        {
            "MESIBO_APP_TOKEN": token,
            "MESIBO_API_URL": fake_mesibo.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/check.db",
        }
    )
    flask = Path(sys.executable).parent / "flask"
    return subprocess.run(
        [str(flask), "--app", "app", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_check_command_against_the_stand_in(tmp_path, fake_mesibo):
    """`flask --app app check` says in plain words whether mesibo takes the app token."""
    good = _flask_check(tmp_path, fake_mesibo, APP_TOKEN)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "mesibo accepted the app token" in good.stdout
    bad = _flask_check(tmp_path, fake_mesibo, "not-the-right-token-123")
    assert bad.returncode == 1
    assert "app token rejected by mesibo" in bad.stdout
    assert "not-the-right-token-123" not in bad.stdout + bad.stderr


def test_metrics_survive_a_reload(start_service):
    """kill -HUP on the master (systemctl reload) restarts the workers; the counters go on."""
    service = start_service(workers=2)
    for _ in range(10):
        requests.post(service.url, json={"op": "logout"}, timeout=10)

    def logouts():
        text = requests.get(service.url + "metrics", timeout=10).text
        [count] = re.findall(r'messenger_requests_total\{error="",op="logout",result="OK"\} (\S+)', text)
        return float(count)

    assert logouts() == 10
    os.kill(service.process.pid, signal.SIGHUP)
    service.wait_for_workers(4)  # two new ones booted
    time.sleep(0.5)
    requests.post(service.url, json={"op": "logout"}, timeout=10)
    assert logouts() == 11


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
    ],
    ids=["bad-chunk-size", "missing-chunk-terminator"],
)
def test_a_malformed_chunked_body_is_badrequest_not_internal(start_service, data):
    service = start_service(workers=1)
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert not head.startswith(b"HTTP/1.1 5"), head
    assert json.loads(body)["error"] == "BADREQUEST"


def test_a_reload_applies_a_changed_configuration_without_failing_a_request(tmp_path, fake_mesibo):
    """kill -HUP under load: zero failed requests, then the new limit holds; a broken file is refused."""
    config = tmp_path / "config.toml"
    config.write_text("[limits]\nsends_per_ip_per_hour = 100000\nresend_cooldown_seconds = 0\n")
    service = Service(
        tmp_path,
        {
            "MESSENGER_CONFIG": str(config),
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake_mesibo.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/reload.db",
            "MESSENGER_SENDER_NAME": "log",
        },
    )
    try:
        failures, answers, stop = [], [], threading.Event()

        def load():
            # a connection per request: a client's own reuse of a keep-alive connection the old worker
            # is closing is a race every HTTP client meets on a reload, not a request the service lost
            while not stop.is_set():
                try:
                    answer = requests.post(service.url, json={"op": "logout"}, timeout=10)
                    answers.append(answer.json()["result"])
                except (requests.RequestException, ValueError) as exc:
                    failures.append(exc)

        threads = [threading.Thread(target=load) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        ask = {"op": "login", "phone": "12015550100", "appid": "a"}
        assert requests.post(service.url, json=ask, timeout=10).json()["result"] == "OK"
        config.write_text("[limits]\nsends_per_ip_per_hour = 1\nresend_cooldown_seconds = 0\n")
        os.kill(service.process.pid, signal.SIGHUP)
        service.wait_for_workers(4)
        time.sleep(1)
        config.write_text("[limits]\nsends_per_ip_per_hour = 'many'\n")  # broken: must be refused
        os.kill(service.process.pid, signal.SIGHUP)
        service.wait_for_workers(6)
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert failures == [] and len(answers) > 100 and set(answers) == {"OK"}
        refused = requests.post(service.url, json={**ask, "phone": "12015550101"}, timeout=10).json()
        assert refused["error"] == "RATELIMIT"  # the second code from this address: the new limit of 1
        log = service.log()
        assert "configuration reloaded" in log
        assert "configuration not reloaded, the old one keeps serving" in log and "limits.sends_per_ip_per_hour" in log
    finally:
        service.stop()


def test_json_logs_are_json_on_every_line_gunicorns_included(start_service):
    """logging.json: gunicorn's own lines and its access log too, so jq can read the whole stream."""
    service = start_service(workers=2, MESSENGER_LOGGING_JSON="true", GUNICORN_ACCESSLOG="-")
    requests.post(service.url, json={"op": "login", "phone": PHONE, "appid": "a"}, timeout=10)
    requests.post(service.url, json={"op": "logout"}, timeout=10)
    time.sleep(0.5)
    service.stop()
    lines = [line for line in service.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line parses
    loggers = {entry["log"]["logger"] for entry in entries}
    assert {"gunicorn.error", "gunicorn.access", "app", "app.requests", "app.senders.log"} <= loggers
    access = [entry for entry in entries if entry["log"]["logger"] == "gunicorn.access"]
    assert access[0]["http"]["request"]["method"] == "POST" and access[0]["http"]["response"]["status_code"] == 200


@pytest.mark.parametrize(
    "store",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.skipif(not postgres_url(), reason="TEST_DATABASE_URL is not set")),
    ],
)
def test_a_pumping_burst_leaves_other_countries_logging_in(start_service, store):
    """Issue 22, item 1, under the shipped gunicorn (2 workers): 55 addresses pump new numbers in 14
    countries at once while new users in the US log in before, during and after. Each pumped country
    gets exactly its budget across both workers; every US user logs in."""

    regions = PUMPED_REGIONS
    bases = mobile_prefixes(regions)
    with postgres_schema("pump") if store == "postgres" else contextlib.nullcontext(None) as database:
        service = start_service(
            MESSENGER_LIMITS_GLOBAL_SENDS_PER_HOUR="1000",
            MESSENGER_LIMITS_SENDS_PER_COUNTRY_PER_HOUR="40",
            MESSENGER_LIMITS_SENDS_PER_IP_PER_HOUR="20",
            MESSENGER_LIMITS_QUARANTINE_PREFIX_DIGITS="0",
            MESSENGER_SERVER_TRUSTED_PROXIES="1",
            **({"DATABASE_URL": database} if database else {}),
        )
        us = iter(range(10_000))

        def us_user() -> bool:
            k = next(us)
            phone, headers = f"1202555{k:04d}", {"X-Forwarded-For": f"198.51.100.{k}"}
            asked = requests.post(
                service.url, json={"op": "login", "phone": phone, "appid": "com.example"}, headers=headers, timeout=10
            ).json()
            codes = dict(code_lines(service))
            if asked["result"] != "OK" or phone not in codes:
                return False
            body = {"op": "login", "phone": phone, "appid": "com.example", "otp": codes[phone]}
            return requests.post(service.url, json=body, headers=headers, timeout=10).json()["result"] == "OK"

        before = [us_user() for _ in range(10)]
        outcomes: list[str] = []
        pumping = threading.Event()
        pumping.set()

        def pump(address: int) -> None:
            with requests.Session() as session:
                for i in range(20):
                    n = address * 20 + i
                    answer = session.post(
                        service.url,
                        json={"op": "login", "phone": f"{bases[n % 14]}{n // 14:03d}", "appid": "com.example"},
                        headers={"X-Forwarded-For": f"10.9.{address}.1"},
                        timeout=10,
                    ).json()
                    outcomes.append(answer.get("error", "OK"))

        during: list[bool] = []

        def watch() -> None:
            while pumping.is_set() and len(during) < 15:
                during.append(us_user())
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=pump, args=(address,)) for address in range(55)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pumping.clear()
        watcher.join()
        after = [us_user() for _ in range(10)]
    print(f"\nburst: {len(before)} before, {len(during)} during, {len(after)} after; {outcomes.count('OK')} sent")
    assert all(before) and all(after) and all(during) and during, (before, during, after)
    assert outcomes.count("OK") == 14 * 40 and outcomes.count("RATELIMIT") == 55 * 20 - 14 * 40
