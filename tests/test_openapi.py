"""The API description: served, kept in docs/, and the live app never answers outside it (schemathesis)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses
import schemathesis
from helpers import API_URL, base_config
from hypothesis import HealthCheck, settings

from app import create_app
from app.errors import CODES

ROOT = Path(__file__).resolve().parent.parent


def _app():
    import tempfile

    # Module level: schemathesis collects its cases from a live app at import time.
    return create_app(base_config(tempfile.mkdtemp(prefix="schemathesis-"), **{"login.notice": True}), environ={})


APP = _app()
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)


def test_the_description_is_served_as_shipped(client):
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.get_json() == json.loads((ROOT / "app" / "openapi.json").read_text())


def test_an_unready_answer_matches_its_description(make_app, tmp_path):
    """/readyz's 503 names its cause in "database" (the description allowed only "unreachable")."""
    import sqlite3

    import jsonschema

    app = make_app(**{"database.url": f"sqlite:///{tmp_path}/messenger.db"})
    holder = sqlite3.connect(tmp_path / "messenger.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the database: no login could be stored
    try:
        answer = app.test_client().get("/readyz")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    described = app.test_client().get("/openapi.json").get_json()["components"]["schemas"]["Readiness"]
    assert answer.status_code == 503
    jsonschema.validate(answer.get_json(), described)


def test_every_error_code_is_described(client):
    described = client.get("/openapi.json").get_json()["components"]["schemas"]["Answer"]["properties"]["error"]
    assert set(described["enum"]) == set(CODES)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_app_conforms_to_its_description(case):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(API_URL, json={"result": True, "user": {"token": "t"}})
        # The contract answers bad input with HTTP 200 and an error code in the envelope (the apps
        # crash on anything else), so "invalid data must get a 4xx" does not apply; every other
        # check (no 5xx, status codes, content types, the answer's schema) does.
        case.call_and_validate(excluded_checks=[schemathesis.checks.negative_data_rejection])


def answer_validator(client):
    from jsonschema import Draft202012Validator

    document = client.get("/openapi.json").get_json()
    return Draft202012Validator(document["components"]["schemas"]["Answer"])


@pytest.mark.parametrize(
    "body",
    [
        {"op": "login", "phone": "18005551234", "appid": "a"},
        {"op": "nope"},
        "[]",
        {"op": "logout"},
        {"op": "login", "phone": "1"},
    ],
)
def test_hand_picked_answers_validate_against_the_answer_schema(client, body):
    answer = client.post("/", data=json.dumps(body) if not isinstance(body, str) else body).get_json()
    assert not list(answer_validator(client).iter_errors(answer))


def test_a_successful_login_and_a_refusal_validate_against_the_answer_schema(client, outbox, mesibo_api, clock):
    """schemathesis cannot guess a code, so the success answer is checked here."""
    from helpers import ask_code, mint_ok, post

    mint_ok(mesibo_api)
    code = ask_code(client, outbox)
    refused = post(client, {"op": "login", "phone": "18005551234", "appid": "com.mesibo.test"})
    success = post(client, {"op": "login", "phone": "18005551234", "appid": "com.mesibo.test", "otp": code})
    assert refused["error"] == "RATELIMIT" and success["result"] == "OK"
    validator = answer_validator(client)
    assert not list(validator.iter_errors(refused))
    assert not list(validator.iter_errors(success))
    assert list(validator.iter_errors({**success, "urls": "not an object"}))  # the schema really checks types


def test_the_postman_collection_requests_are_answered(client, outbox):
    """Every POST body in the shipped Postman collection, with its variables filled in, gets an answer."""
    collection = json.loads((ROOT / "docs" / "messenger-backend.postman_collection.json").read_text())
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    variables["otp"] = variables["deleteOtp"] = "000000"
    results = []
    for item in collection["item"]:
        if item["request"]["method"] != "POST":
            continue
        body = item["request"]["body"]["raw"]
        for key, value in variables.items():
            body = body.replace("{{" + key + "}}", value)
        results.append(client.post("/", data=body, content_type="application/json").get_json())
    # login step 1, a made-up code, logout, deletion step 1 in step 1's cooldown, a made-up deletion
    # code, WhatsApp and voice (not offered by default), the tutorial's step 1 in the cooldown
    assert [(r["op"], r.get("error")) for r in results] == [
        ("login", None),
        ("login", "BADCODE"),
        ("logout", None),
        ("deleteaccount", "RATELIMIT"),
        ("deleteaccount", "BADCODE"),
        ("login", "BADCHANNEL"),
        ("login", "BADCHANNEL"),
        ("login", "RATELIMIT"),
    ]
