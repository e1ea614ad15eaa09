"""Running it: health, readiness, metrics, and the check / send-test-code commands."""

from __future__ import annotations

import pytest
from helpers import API_URL, APP_TOKEN, APPID, PHONE, ask_code, mint_ok, post
from responses import matchers


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_reports_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json()["database"] == "ok"


def test_readyz_is_503_when_the_database_is_gone(app, services, tmp_path):
    services.store.close()
    for leftover in tmp_path.glob("test.db*"):
        leftover.unlink()
    (tmp_path / "test.db").mkdir()  # a folder where the database was: SQLite cannot open it
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"


def metric(text, name, **labels):
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{key}="{value}"' in line for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_codes_mesibo_calls_and_refusals(client, outbox, mesibo_api):
    mint_ok(mesibo_api)
    code = ask_code(client, outbox)
    post(client, {"op": "login", "phone": PHONE, "appid": APPID})  # refused by the cooldown
    post(client, {"op": "login", "phone": PHONE, "appid": APPID, "otp": code})
    post(client, {"op": "nope"})
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "messenger_requests_total", op="login", result="OK") == 2
    assert metric(text, "messenger_requests_total", op="login", result="FAIL", error="RATELIMIT") == 1
    assert metric(text, "messenger_requests_total", op="unknown", error="BADOP") == 1
    assert metric(text, "messenger_codes_sent_total", sender="memory", outcome="ok") == 1
    assert metric(text, "messenger_limit_refusals_total", kind="cooldown") == 1
    assert metric(text, "messenger_mesibo_request_seconds_count", op="useradd") == 1
    assert metric(text, "messenger_mesibo_failures_total", op="useradd") == 0


def test_mesibo_failures_are_counted(client, outbox, mesibo_api):
    code = ask_code(client, outbox)
    mesibo_api.post(API_URL, status=503)
    post(client, {"op": "login", "phone": PHONE, "appid": APPID, "otp": code})
    assert metric(client.get("/metrics").get_data(as_text=True), "messenger_mesibo_failures_total", op="useradd") == 1


def test_every_watched_series_exists_from_the_first_scrape(client):
    """Before any event: a series that appeared only with its first event was invisible to rate()
    for that first burst (an alert could not fire on it) and panels read "No data"."""
    text = client.get("/metrics").get_data(as_text=True)
    for series in (
        'messenger_limit_refusals_total{kind="send-all"} 0.0',
        'messenger_limit_refusals_total{kind="fail"} 0.0',
        'messenger_mesibo_failures_total{op="useradd"} 0.0',
        'messenger_mesibo_app_refusals_total{op="useradd"} 0.0',
        'messenger_codes_sent_total{outcome="error",sender="memory"} 0.0',
        'messenger_readiness_checks_total{result="unready"} 0.0',
    ):
        assert series in text, series


def test_mesibo_refusing_the_app_token_is_counted_for_its_alert(client, outbox, mesibo_api):
    """AUTHFAIL is an answer, not a failed call: it was counted nowhere, so no alert could say
    'mesibo refuses the app token' - the worst mesibo fault."""
    mesibo_api.post(API_URL, json={"result": False, "error": "AUTHFAIL"})
    assert (
        post(client, {"op": "login", "phone": PHONE, "appid": APPID, "otp": ask_code(client, outbox)})["error"]
        == "BADAPP"
    )
    text = client.get("/metrics").get_data(as_text=True)
    assert 'messenger_mesibo_app_refusals_total{op="useradd"} 1.0' in text


def test_metrics_can_be_off_or_moved(make_app):
    assert make_app(**{"metrics.enabled": False}).test_client().get("/metrics").status_code == 404
    moved = make_app(**{"metrics.path": "/internal/metrics"}).test_client()
    assert moved.get("/internal/metrics").status_code == 200
    assert moved.get("/metrics").status_code == 404


def test_check_says_the_token_works(app, mesibo_api):
    mesibo_api.post(
        API_URL,
        json={"result": True, "users": []},
        match=[matchers.json_params_matcher({"op": "usersget", "token": APP_TOKEN, "count": 1})],
    )
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 0, result.output
    assert "mesibo accepted the app token" in result.output
    assert APP_TOKEN not in result.output


def test_check_says_clearly_when_mesibo_rejects_the_token(app, mesibo_api):
    mesibo_api.post(API_URL, json={"result": False, "error": "AUTHFAIL"})
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1
    assert "app token rejected by mesibo" in result.output


def test_check_says_when_mesibo_is_unreachable(app, mesibo_api):
    import requests

    mesibo_api.post(API_URL, body=requests.ConnectionError("down"))
    result = app.test_cli_runner().invoke(args=["check"])
    assert result.exit_code == 1 and "cannot reach mesibo" in result.output


def test_send_test_code_goes_through_the_configured_sender(app, outbox):
    result = app.test_cli_runner().invoke(args=["send-test-code", "+1 800 555 1234"])
    assert result.exit_code == 0, result.output
    [message] = outbox.outbox
    assert message.address == PHONE and message.code in result.output


@pytest.mark.parametrize("address", ["12", "not a phone"])
def test_send_test_code_refuses_a_bad_address(app, outbox, address):
    result = app.test_cli_runner().invoke(args=["send-test-code", address])
    assert result.exit_code == 2 and outbox.outbox == []


def test_send_test_code_reports_a_provider_failure(app, outbox):
    outbox.fail_next = 1
    result = app.test_cli_runner().invoke(args=["send-test-code", PHONE])
    assert result.exit_code == 1 and "failed" in result.output


def test_made_up_ops_do_not_become_metric_labels(client):
    """Label values come from a known set, or anyone could grow the metrics without bound."""
    for i in range(5):
        post(client, {"op": f"made-up-{i}"})
    text = client.get("/metrics").get_data(as_text=True)
    assert "made-up" not in text
    assert metric(text, "messenger_requests_total", op="unknown", error="BADOP") == 5
