"""The endpoint: transports, body readings, the envelope on every answer, headers (contract sections 1-2)."""

from __future__ import annotations

import io
import json

import pytest
import responses
from helpers import API_URL, APPID, PHONE, login, post, services_of

TUTORIAL_BODY = '{op: "login", phone: "18005551234", appid: "com.messenger.appid"}'


def assert_envelope(answer, op, result):
    assert isinstance(answer, dict)
    assert answer["op"] == op
    assert answer["result"] == result
    assert isinstance(answer["ts"], int) and not isinstance(answer["ts"], bool)


def test_every_answer_carries_the_services_clock_as_ts(client, clock):
    """ts comes from the injected clock, OK or FAIL alike (it read the real clock)."""
    ok = post(client, {"op": "login", "phone": "12015550123", "appid": "a"})
    clock.advance(7)
    refused = post(client, {"op": "login", "phone": "12015550123", "appid": "a"})
    assert (ok["ts"], refused["ts"]) == (int(clock()) - 7, int(clock())) and refused["result"] == "FAIL"


def test_tutorial_curl_body_with_unquoted_keys_sends_a_code(client, outbox):
    """The mesibo tutorial's curl example is not strict JSON; it must still work verbatim."""
    answer = post(client, TUTORIAL_BODY, headers={"Content-Type": "application/json"})
    assert_envelope(answer, "login", "OK")
    assert outbox.last_code(PHONE) is not None


def test_single_quoted_relaxed_json_is_read(client, outbox):
    answer = post(client, "{'op': 'login', 'phone': '18005551234', 'appid': 'x'}")
    assert_envelope(answer, "login", "OK")


@pytest.mark.parametrize("path", ["/", "/index.php", "/api.php"])
def test_endpoint_is_served_at_every_path(client, path):
    response = client.post(path, data=json.dumps({"op": "logout"}))
    assert response.get_json()["result"] == "OK"


def test_body_without_content_type_is_read_as_json(client, outbox):
    """The Swift app sets no Content-Type at all."""
    response = client.post(
        "/", data=json.dumps({"op": "login", "phone": PHONE, "appid": APPID}).encode(), content_type=""
    )
    assert response.get_json()["result"] == "OK"
    assert outbox.last_code(PHONE)


def test_json_with_a_text_plain_content_type_is_read(client, outbox):
    response = client.post(
        "/", data=json.dumps({"op": "login", "phone": PHONE, "appid": APPID}), content_type="text/plain"
    )
    assert response.get_json()["result"] == "OK"


def test_form_body_is_accepted(client, outbox):
    response = client.post("/", data={"op": "login", "phone": PHONE, "appid": APPID})
    assert response.get_json()["result"] == "OK"
    assert outbox.last_code(PHONE)


def test_multipart_form_body_is_accepted(client, outbox):
    response = client.post(
        "/", data={"op": "login", "phone": PHONE, "appid": APPID}, content_type="multipart/form-data"
    )
    assert response.get_json()["result"] == "OK"


def test_query_string_fields_are_accepted(client, outbox):
    response = client.post(f"/?op=login&phone={PHONE}&appid={APPID}")
    assert response.get_json()["result"] == "OK"


def test_body_fields_win_over_query_fields(client):
    answer = client.post("/?op=login", json={"op": "logout"}).get_json()
    assert answer["op"] == "logout"


@pytest.mark.parametrize(
    "body",
    ["[1, 2, 3]", "42", '"login"', "null", "true", "{not json at all", "\x00\x01garbage", "[" * 5000 + "]" * 5000],
)
def test_a_body_that_is_no_object_answers_badrequest(client, body):
    answer = post(client, body)
    assert_envelope(answer, "", "FAIL")
    assert answer["error"] == "BADREQUEST"


def test_invalid_utf8_answers_badrequest(client):
    answer = post(client, b"\xff\xfe\xfd{")
    assert answer["error"] == "BADREQUEST"


def test_oversized_body_answers_badrequest_with_the_envelope(make_app):
    client = make_app(**{"server.max_body_bytes": 1024}).test_client()
    answer = post(client, json.dumps({"op": "login", "pad": "x" * 2000}))
    assert_envelope(answer, "", "FAIL")
    assert answer["error"] == "BADREQUEST"


def test_oversized_multipart_body_answers_the_envelope(make_app):
    client = make_app(**{"server.max_body_bytes": 1024}).test_client()
    response = client.post("/", data={"op": "login", "pad": "x" * 4000}, content_type="multipart/form-data")
    assert response.status_code == 200
    assert response.get_json()["error"] == "BADREQUEST"


def test_oversized_body_without_content_length_is_refused(make_app):
    """A chunked body has no Content-Length; the limit must hold when reading the stream (as under gunicorn)."""
    client = make_app(**{"server.max_body_bytes": 1024}).test_client()
    body = json.dumps({"op": "login", "pad": "x" * 5000}).encode()
    response = client.post(
        "/",
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.get_json()["error"] == "BADREQUEST"


def test_missing_op_answers_noop(client):
    answer = post(client, {"phone": PHONE})
    assert_envelope(answer, "", "FAIL")
    assert answer["error"] == "NOOP"


def test_empty_body_answers_noop(client):
    assert post(client, b"")["error"] == "NOOP"


def test_unknown_op_answers_badop_and_echoes_it_lower_cased(client):
    answer = post(client, {"op": "FlyToMoon"})
    assert_envelope(answer, "flytomoon", "FAIL")
    assert answer["error"] == "BADOP"


def test_op_is_matched_case_insensitively_and_trimmed(client):
    answer = post(client, {"op": "  LOGOUT "})
    assert_envelope(answer, "logout", "OK")


@pytest.mark.parametrize("op", [5, ["login"], {"a": 1}, True])
def test_op_of_a_wrong_type_answers_badop_with_an_empty_op(client, op):
    answer = post(client, {"op": op})
    assert_envelope(answer, "", "FAIL")
    assert answer["error"] == "BADOP"


def test_login_without_appid_answers_missingappid(client):
    answer = post(client, {"op": "login", "phone": PHONE})
    assert answer["error"] == "MISSINGAPPID"
    assert "errmsg" not in answer


@pytest.mark.parametrize("phone", [None, "", "123", "abc", ["18005551234"], {"n": 1}, True, 1.5, "9" * 40])
def test_login_with_a_bad_phone_answers_badphone(client, outbox, phone):
    answer = post(client, {"op": "login", "phone": phone, "appid": APPID})
    assert_envelope(answer, "login", "FAIL")
    assert answer["error"] == "BADPHONE"
    assert outbox.outbox == []


def test_phone_sent_as_a_number_is_accepted(client, outbox):
    answer = post(client, {"op": "login", "phone": 18005551234, "appid": APPID})
    assert answer["result"] == "OK"
    assert outbox.last_code(PHONE)


@pytest.mark.parametrize("appid", [["x"], {"a": 1}, False])
def test_appid_of_a_wrong_type_answers_missingappid(client, appid):
    assert post(client, {"op": "login", "phone": PHONE, "appid": appid})["error"] == "MISSINGAPPID"


def test_every_answer_has_no_cache_and_cors_headers(client):
    response = client.post("/", json={"op": "logout"})
    assert response.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert response.headers["Pragma"] == "no-cache"
    assert "1970" in response.headers["Expires"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_options_answers_204_with_cors(client):
    response = client.options("/", headers={"Origin": "https://web.example.org"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type, X-Request-ID"
    assert response.headers["Access-Control-Expose-Headers"] == "X-Request-ID"
    assert response.headers["Access-Control-Max-Age"] == "600"  # no second preflight while the user types


def test_a_list_of_origins_is_reflected_with_vary(make_app):
    origins = ["https://web.example.org", "https://admin.example.org:8443"]
    client = make_app(**{"server.cors_origins": origins, "server.cors_max_age": 60}).test_client()
    for origin in origins:
        response = client.post("/", json={"op": "logout"}, headers={"Origin": origin})
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert response.headers["Vary"] == "Origin" and response.headers["Access-Control-Max-Age"] == "60"
    stranger = client.post("/", json={"op": "logout"}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in stranger.headers and stranger.headers["Vary"] == "Origin"
    assert stranger.get_json()["error"] == "BADORIGIN"


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"Origin": "https://evil.example"}, "BADORIGIN"),
        ({"Origin": "null"}, "BADORIGIN"),  # a sandboxed frame, a file:// page
        ({"Sec-Fetch-Site": "cross-site"}, "BADORIGIN"),  # a browser that sent no Origin
        ({"Origin": "https://web.example.org"}, None),
        ({"Sec-Fetch-Site": "same-origin"}, None),
        ({}, None),  # the apps send neither
    ],
)
def test_a_page_on_an_origin_not_allowed_gets_no_code_sent(make_app, headers, error):
    """A text/plain POST needs no preflight: without this check such a page made the service send
    a code, though it could not read the answer."""
    app = make_app(**{"server.cors_origins": ["https://web.example.org"]})
    outbox = services_of(app).sender
    answer = (
        app.test_client()
        .post(
            "/",
            data=json.dumps({"op": "login", "phone": PHONE, "appid": APPID}),
            headers={"Content-Type": "text/plain", **headers},
        )
        .get_json()
    )
    assert answer["op"] == "login" and answer.get("error") == error
    assert len(outbox.outbox) == (0 if error else 1)


def test_with_every_origin_allowed_no_origin_is_refused(client):
    answer = client.post("/", json={"op": "logout"}, headers={"Origin": "https://any.example"}).get_json()
    assert answer["result"] == "OK"


@pytest.mark.parametrize(
    "origins",
    [["https://a.example,https://b.example"], ["https://a.example/"], ["*", "https://a.example"], ["a.example"], []],
)
def test_an_invalid_origin_stops_start_up_naming_the_key(make_app, origins):
    from app import ConfigError

    with pytest.raises(ConfigError, match="server.cors_origins"):
        make_app(**{"server.cors_origins": origins})


def test_get_redirects_to_the_configured_url(make_app):
    client = make_app(**{"server.redirect_url": "https://example.org/messenger"}).test_client()
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.org/messenger"


def test_request_id_is_taken_from_the_header_or_generated(client):
    assert client.post("/", json={"op": "logout"}, headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == (
        "abc-123"
    )
    assert len(client.post("/", json={"op": "logout"}).headers["X-Request-ID"]) == 32


def test_unexpected_exception_answers_internal_without_a_stack_trace(client, outbox, mesibo_api, caplog):
    """Anything unexpected becomes INTERNAL in the envelope, logged with the request id."""
    code = post(client, {"op": "login", "phone": PHONE, "appid": APPID}) and outbox.last_code(PHONE)
    mesibo_api.post(API_URL, body=MemoryError("boom"))
    response = client.post(
        "/", json={"op": "login", "phone": PHONE, "appid": APPID, "otp": code}, headers={"X-Request-ID": "req-42"}
    )
    assert response.status_code == 200
    answer = response.get_json()
    assert_envelope(answer, "login", "FAIL")
    assert answer["error"] == "INTERNAL"
    assert "Traceback" not in response.get_data(as_text=True)


def test_post_to_an_unknown_path_still_answers_the_envelope(client):
    response = client.post("/nowhere", json={"op": "login"})
    assert response.mimetype == "application/json"
    assert_envelope(response.get_json(), "", "FAIL")


def test_message_text_is_off_by_default_and_can_be_turned_on(make_app, client):
    assert "message_text" not in post(client, {"op": "nope"})
    loud = make_app(**{"server.error_message_text": True}).test_client()
    assert post(loud, {"op": "nope"})["message_text"] == "Unknown op."


def test_no_errmsg_on_login_failures(client):
    assert "errmsg" not in post(client, {"op": "login", "phone": "1", "appid": APPID})


@responses.activate
def test_logout_always_answers_ok(client):
    answer = post(client, {"op": "logout", "token": "whatever"})
    assert_envelope(answer, "logout", "OK")
    assert len(responses.calls) == 0


def test_logout_revokes_the_users_tokens_at_mesibo(make_app, mesibo_api):
    """By default: mesibo's userset with token.remove, for the address and app id the token was minted
    for - found from the token alone; a token this service did not mint (or already logged out) costs
    mesibo nothing."""
    from helpers import APP_TOKEN, ask_code, expect_useradd
    from responses import matchers

    app = make_app()
    client = app.test_client()
    expect_useradd(
        mesibo_api, {"address": PHONE, "token": {"appid": APPID, "expiry": 525600, "v2": True}}, token="user-tok"
    )
    assert login(client, otp=ask_code(client, services_of(app).sender))["token"] == "user-tok"
    user = {"address": PHONE, "token": {"remove": True, "appid": APPID}}
    call = mesibo_api.post(
        API_URL,
        json={"result": True},
        match=[matchers.json_params_matcher({"op": "userset", "token": APP_TOKEN, "user": user})],
    )
    for token in ("not-minted-here", "user-tok", "user-tok"):
        assert post(client, {"op": "logout", "token": token})["result"] == "OK"
    assert call.call_count == 1
    events = services_of(app).store.events(event="revoked")
    assert len(events) == 1 and events[0].subject == services_of(app).auditor.subject(PHONE)


def test_logout_is_ok_even_when_the_revoke_fails(make_app, mesibo_api):
    from helpers import ask_code, mint_ok

    app = make_app()
    client = app.test_client()
    mint_ok(mesibo_api, token="user-tok")
    login(client, otp=ask_code(client, services_of(app).sender))
    mesibo_api.replace("POST", API_URL, status=503)
    assert post(client, {"op": "logout", "token": "user-tok"})["result"] == "OK"
    assert len(mesibo_api.calls) == 2  # the useradd, and the revoke that failed


def test_logout_without_revoking_asks_mesibo_nothing(make_app, mesibo_api):
    from helpers import ask_code, mint_ok

    app = make_app(**{"mesibo.revoke_on_logout": False})
    client = app.test_client()
    mint_ok(mesibo_api, token="user-tok")
    login(client, otp=ask_code(client, services_of(app).sender))
    assert post(client, {"op": "logout", "token": "user-tok"})["result"] == "OK"
    assert len(mesibo_api.calls) == 1


def test_answers_do_not_share_headers(client):
    """Each answer has its own length and request id, however many came before it."""
    first = client.post("/", json={"op": "logout"}, headers={"X-Request-ID": "one"})
    second = client.post("/", json={"op": "a-much-longer-unknown-op-name"}, headers={"X-Request-ID": "two"})
    assert first.headers["X-Request-ID"] == "one" and second.headers["X-Request-ID"] == "two"
    assert int(second.headers["Content-Length"]) == len(second.data)
    assert second.headers.getlist("Content-Length") == [str(len(second.data))]
    assert client.get("/healthz").headers.getlist("Content-Type") == ["application/json"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"op":"login","phone":"18005551234","appid":"\\ud800"}', "MISSINGAPPID"),
        ('{"op":"login","phone":"18005551234","appid":"a","otp":"\\ud800"}', "BADCODE"),
        ('{"op":"login","phone":"\\udfff","appid":"a"}', "BADPHONE"),
        ('{"op":"login","phone":"18005551234","appid":"a","otp":"1","name":"\\ud800"}', "BADREQUEST"),
        ('{"op":"\\ud800"}', "BADOP"),
    ],
)
def test_lone_surrogates_get_the_fields_own_error(client, body, error):
    """JSON may carry a lone surrogate, which no text encoding can hold: the field's error, never INTERNAL."""
    answer = post(client, body)
    assert answer["result"] == "FAIL" and answer["error"] == error
