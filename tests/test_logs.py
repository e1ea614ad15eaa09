"""Secrets never reach a log line or an answer; the code appears only in the log sender's line."""

from __future__ import annotations

import io
import logging

import pytest
from helpers import API_URL, APP_TOKEN, APPID, OTP_SECRET, PHONE, mint_ok, post, services_of


@pytest.fixture(name="all_logs")
def _all_logs():
    """Every log record of every logger, at DEBUG (urllib3 logs request URLs there)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root, app_logger = logging.getLogger(), logging.getLogger("app")
    saved = root.level, app_logger.level
    root.addHandler(handler)
    app_logger.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    app_logger.removeHandler(handler)
    root.setLevel(saved[0])
    app_logger.setLevel(saved[1])


def full_login(make_app, mesibo_api, all_logs, **config):
    app = make_app(**{"sender.name": "log", "logging.requests": True, "logging.level": "DEBUG", **config})
    client = app.test_client()
    answers = [post(client, {"op": "login", "phone": PHONE, "appid": APPID})]
    code_lines = [line for line in all_logs.getvalue().splitlines() if "login code for" in line]
    assert len(code_lines) == 1
    code = code_lines[0].split(": ", 1)[1].split(" ")[0]
    answers.append(post(client, {"op": "login", "phone": PHONE, "appid": APPID, "otp": code}))
    answers.append(post(client, {"op": "logout", "token": answers[-1]["token"]}))
    return code, answers, all_logs.getvalue()


def test_full_login_keeps_the_app_token_out_of_logs_and_answers(make_app, mesibo_api, all_logs):
    mint_ok(mesibo_api, "user-token-xyz")
    code, answers, logs = full_login(make_app, mesibo_api, all_logs)
    assert answers[1]["result"] == "OK"
    assert "request" in logs  # the capture really saw the request lines
    assert APP_TOKEN not in logs
    assert OTP_SECRET not in logs
    assert all(APP_TOKEN not in str(answer) for answer in answers)
    lines_with_code = [line for line in logs.splitlines() if code in line]
    assert len(lines_with_code) == 1 and "login code for" in lines_with_code[0]


def test_legacy_style_token_in_the_url_is_redacted_from_every_log_line(make_app, mesibo_api, all_logs):
    mesibo_api.get("https://mesibo.test/api.php", json={"result": True, "user": {"token": "legacy-user"}})
    _, answers, logs = full_login(make_app, mesibo_api, all_logs, **{"mesibo.api_style": "legacy"})
    assert answers[1]["token"] == "legacy-user"
    assert "legacy" in logs  # the start-up warning about the token in URLs
    assert APP_TOKEN not in logs


def test_an_exception_that_carries_the_token_is_redacted(make_app, mesibo_api, all_logs):
    """An unexpected error whose text holds the token is logged with a traceback, redacted."""
    mesibo_api.post(API_URL, body=RuntimeError(f"failed calling {API_URL}?token={APP_TOKEN}"))
    app = make_app(**{"logging.level": "DEBUG"})
    client = app.test_client()
    post(client, {"op": "login", "phone": PHONE, "appid": APPID})
    code = services_of(app).sender.last_code(PHONE)
    answer = post(client, {"op": "login", "phone": PHONE, "appid": APPID, "otp": code})
    assert answer["error"] == "INTERNAL"
    logs = all_logs.getvalue()
    assert "RuntimeError" in logs and "[REDACTED]" in logs
    assert APP_TOKEN not in logs


def test_json_log_lines_carry_the_request_fields(make_app, all_logs, capsys):
    import json

    app = make_app(**{"logging.json": True, "logging.requests": True})
    app.test_client().post("/", json={"op": "logout"}, headers={"X-Request-ID": "rid-1"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    request_lines = [line for line in lines if line["log"]["logger"] == "app.requests"]
    last = request_lines[-1]
    assert last["messenger"] == {"op": "logout", "result": "OK", "error": "", "detail": ""}
    assert last["http"]["request"]["id"] == "rid-1" and last["http"]["response"]["status_code"] == 200
    assert last["client"]["ip"] == "127.0.0.1" and last["url"]["path"] == "/"
    assert last["ecs"]["version"] and last["@timestamp"].endswith("Z") and last["event"]["duration"] > 0


@pytest.mark.parametrize(
    ("body", "error", "detail"),
    [
        ({"op": "login", "phone": "12", "appid": APPID}, "BADPHONE", "phone is missing or not valid"),
        ({"op": "login", "phone": ["1"], "appid": APPID}, "BADPHONE", "phone must be a string"),
        ("[1, 2]", "BADREQUEST", "the body is JSON but not an object"),
        ("\x00garbage", "BADREQUEST", "the body is neither JSON nor a form"),
    ],
)
def test_the_request_line_says_why_a_request_failed(make_app, all_logs, body, error, detail):
    """The error code tells the app what happened; the log line tells the operator why."""
    app = make_app(**{"logging.requests": True})
    post(app.test_client(), body)
    [line] = [line for line in all_logs.getvalue().splitlines() if line.startswith("app.requests")]
    assert f"error={error} detail={detail!r}" in line


def test_a_refusal_names_its_limit_in_the_request_line(make_app, all_logs):
    app = make_app(**{"logging.requests": True})
    client = app.test_client()
    post(client, {"op": "login", "phone": PHONE, "appid": APPID})
    post(client, {"op": "login", "phone": PHONE, "appid": APPID})  # within the cooldown
    last = [line for line in all_logs.getvalue().splitlines() if line.startswith("app.requests")][-1]
    assert "error=RATELIMIT detail='limit cooldown'" in last


def test_control_characters_in_a_field_cannot_forge_a_log_line(make_app, all_logs):
    app = make_app(**{"logging.requests": True})
    post(app.test_client(), {"op": "x\napp.senders.log INFO login code for 1555: 123456", "appid": APPID})
    lines = all_logs.getvalue().splitlines()
    assert not any(line.startswith("app.senders.log") for line in lines)
    assert any("op=x\\napp.senders.log" in line for line in lines if line.startswith("app.requests"))
