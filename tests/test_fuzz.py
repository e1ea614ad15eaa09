"""Property tests: whatever arrives, the answer is the envelope, never a 500, and the store stays sane."""

from __future__ import annotations

import json
import re

import pytest
import responses
from helpers import API_URL, base_config, sqlite_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["18005551234", "+44 7911 123456", "0091 98765 43210", "123456", "", " ", "com.app"]),
    st.from_regex(r"\+?[0-9]{0,16}", fullmatch=True),
)
requests_bodies = st.fixed_dictionaries(
    {},
    optional={
        "op": st.one_of(st.sampled_from(["login", "logout", "LOGIN", " login ", "", "x"]), json_values),
        "phone": field_values,
        "appid": field_values,
        "otp": field_values,
        "name": field_values,
        "token": field_values,
        "dt": field_values,
    },
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.one_of(
            header_text,
            st.sampled_from(
                ["application/json", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain"]
            ),
        ),
        "X-Forwarded-For": header_text,
        "X-Request-ID": header_text,
        "Origin": header_text,
        "Accept": header_text,
    },
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(name="fuzz_app", scope="module")
def _fuzz_app(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz")
    app = create_app(base_config(path, **{"server.trusted_proxies": 1}), environ={})
    app.db_path = path / "test.db"
    return app


def check_answer(response):
    assert response.status_code == 200, response.data[:200]
    assert response.mimetype == "application/json"
    body = json.loads(response.data)
    assert isinstance(body, dict)
    assert isinstance(body["op"], str)
    assert body["result"] in ("OK", "FAIL")
    assert isinstance(body["ts"], int)
    if body["result"] == "FAIL":
        assert re.fullmatch(r"[A-Z]+", body["error"])
    return body


def check_store(app):
    with sqlite_file(app.db_path) as conn:
        for digest, attempts in conn.execute("SELECT digest, attempts FROM codes"):
            assert re.fullmatch(r"[0-9a-f]{64}", digest)
            assert 0 <= attempts <= 5
        assert conn.execute("SELECT COUNT(*) FROM counters WHERE count < 0").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@FUZZ
@given(body=requests_bodies, extra_headers=headers)
def test_any_request_fields_and_headers_get_the_envelope(fuzz_app, body, extra_headers):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(API_URL, json={"result": True, "user": {"token": "t"}})
        response = fuzz_app.test_client().post("/", data=json.dumps(body), headers=extra_headers)
    answer = check_answer(response)
    if isinstance(body.get("op"), str) and body["op"].strip():
        assert answer["op"] == body["op"].strip().lower()[:32]
    check_store(fuzz_app)


@FUZZ
@given(value=json_values)
def test_any_json_value_gets_the_envelope(fuzz_app, value):
    check_answer(fuzz_app.test_client().post("/", data=json.dumps(value)))


@FUZZ
@given(
    raw=st.binary(max_size=600),
    content_type=st.sampled_from(
        ["", "application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"]
    ),
)
def test_any_bytes_get_the_envelope(fuzz_app, raw, content_type):
    check_answer(fuzz_app.test_client().post("/", data=raw, content_type=content_type))
    check_store(fuzz_app)


@FUZZ
@given(text=st.text(max_size=200))
def test_any_text_gets_the_envelope(fuzz_app, text):
    check_answer(fuzz_app.test_client().post("/api.php", data=text.encode("utf-8", "surrogatepass")))
