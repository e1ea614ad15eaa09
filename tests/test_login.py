"""Login: codes (make, hash, expire, attempts, single use) and minting tokens at mesibo (contract section 3)."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from helpers import (
    API_URL,
    APP_TOKEN,
    APPID,
    PHONE,
    ask_code,
    expect_useradd,
    holder_of,
    login,
    mint_ok,
    post,
    postgres_schema,
    postgres_url,
    services_of,
    sqlite_file,
)
from responses import matchers


def test_full_login_returns_every_field_with_the_right_types(client, outbox, mesibo_api):
    mint_ok(mesibo_api, "tok-abc")
    answer = login(client, otp=ask_code(client, outbox))
    assert answer["result"] == "OK" and answer["op"] == "login"
    assert answer["token"] == "tok-abc"
    assert answer["phone"] == PHONE
    assert answer["urls"] == {"upload": "https://s3.mesibo.com/api.php", "download": "https://appimages.mesibo.com/"}
    assert answer["share"] == {
        "text": "Hey, I use Mesibo for free messaging, voice and video calls. Download it from https://m.mesibo.com",
        "subject": "Mesibo Messenger: Open Source Messenger",
        "title": "Invite a friend via",
    }
    assert answer["invite"] == answer["share"]["text"]
    assert answer["fileurl"] == "https://appimages.mesibo.com/"
    assert answer["downloadurl"] == "https://media.mesibo.com/files/"
    assert answer["uploadurl"] == answer["uiconfig"] == "https://app.mesibo.com/api.php"
    assert isinstance(answer["ts"], int)


def test_mesibo_gets_the_documented_useradd_request(client, outbox, mesibo_api):
    call = expect_useradd(
        mesibo_api,
        {"address": PHONE, "name": "Ann", "token": {"appid": APPID, "expiry": 525600, "v2": True}},
        "t",
        more=[
            matchers.header_matcher({"Content-Type": "application/json"}),
            matchers.request_kwargs_matcher({"timeout": (3.0, 10.0)}),
        ],
    )
    assert login(client, otp=ask_code(client, outbox), name=" Ann ")["result"] == "OK"
    assert call.call_count == 1


def test_v2_tokens_can_be_turned_off(make_app, mesibo_api):
    app = make_app(**{"mesibo.token_v2": False})
    client, outbox = app.test_client(), services_of(app).sender
    call = expect_useradd(mesibo_api, {"address": PHONE, "token": {"appid": APPID, "expiry": 525600}}, "t")
    assert login(client, otp=ask_code(client, outbox))["result"] == "OK"
    assert call.call_count == 1


def test_legacy_api_style_sends_the_php_get(make_app, mesibo_api):
    app = make_app(**{"mesibo.api_style": "legacy", "mesibo.token_expiry_minutes": 60})
    client, outbox = app.test_client(), services_of(app).sender
    call = mesibo_api.get(
        "https://mesibo.test/api.php",
        json={"result": True, "user": {"token": "legacy-tok"}},
        match=[
            matchers.query_param_matcher(
                {"op": "useradd", "token": APP_TOKEN, "addr": PHONE, "appid": APPID, "expiry": "60", "v2": "1"}
            )
        ],
    )
    assert login(client, otp=ask_code(client, outbox))["token"] == "legacy-tok"
    assert call.call_count == 1


def test_phone_is_normalized_to_e164_digits(client, outbox, mesibo_api):
    mint_ok(mesibo_api)
    post(client, {"op": "login", "phone": "+1 (800) 555-1234", "appid": APPID})
    code = outbox.last_code(PHONE)
    assert code is not None
    assert login(client, otp=code, phone="001-800-555-1234")["phone"] == PHONE


def test_code_is_six_digits_by_default_and_configurable(make_app, client, outbox):
    code = ask_code(client, outbox)
    assert len(code) == 6 and code.isdigit()
    app = make_app(**{"otp.digits": 8})
    assert len(ask_code(app.test_client(), services_of(app).sender, phone="447911123456")) == 8


def test_code_is_stored_only_as_a_keyed_hash(app, client, outbox, tmp_path):
    """The code as a keyed hash bound to its address and appid; the address itself, and every limit
    counter's key, as a keyed hash too (whoever has the database but not the key cannot list the
    phones; they were kept in clear)."""
    code = ask_code(client, outbox)
    with sqlite_file(tmp_path / "test.db") as db:
        rows = db.execute("SELECT address, appid, digest FROM codes").fetchall()
        counters = [key for (key,) in db.execute("SELECT key FROM counters")]
    assert len(rows) == 1
    address, appid, digest = rows[0]
    assert code not in digest
    services = services_of(app)
    assert address == services.codes.blind(PHONE) and PHONE not in address
    assert digest == services.codes.digest(PHONE, appid, code)
    assert len(digest) == 64
    assert counters and not [key for key in counters if PHONE in key or PHONE[1:] in key], counters


def test_the_message_text_carries_the_code_and_minutes(client, outbox):
    code = ask_code(client, outbox)
    assert outbox.outbox[-1].text == f"{code} is your Mesibo Messenger verification code. It expires in 5 minutes."


def test_a_new_request_replaces_the_old_code(client, outbox, clock, mesibo_api):
    mint_ok(mesibo_api)
    first = ask_code(client, outbox)
    clock.advance(61)
    second = ask_code(client, outbox)
    if first != second:
        assert login(client, otp=first)["error"] == "BADCODE"
    assert login(client, otp=second)["result"] == "OK"


def test_codes_are_per_appid(client, outbox, mesibo_api):
    mint_ok(mesibo_api)
    code = ask_code(client, outbox, appid="com.one")
    assert login(client, otp=code, appid="com.two")["error"] == "BADCODE"
    assert login(client, otp=code, appid="com.one")["result"] == "OK"


def test_wrong_code_answers_badcode(client, outbox, mesibo_api):
    code = ask_code(client, outbox)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answer = login(client, otp=wrong)
    assert answer == {"op": "login", "ts": answer["ts"], "result": "FAIL", "error": "BADCODE"}
    assert len(mesibo_api.calls) == 0


def test_expired_code_answers_badcode(client, outbox, clock, mesibo_api):
    mint_ok(mesibo_api)
    code = ask_code(client, outbox)
    clock.advance(301)
    assert login(client, otp=code)["error"] == "BADCODE"


def test_code_is_good_until_just_before_expiry(client, outbox, clock, mesibo_api):
    mint_ok(mesibo_api)
    code = ask_code(client, outbox)
    clock.advance(299)
    assert login(client, otp=code)["result"] == "OK"


def test_unknown_code_answers_badcode(client):
    assert login(client, otp="123456")["error"] == "BADCODE"


def test_code_works_only_once(client, outbox, mesibo_api):
    mint_ok(mesibo_api)
    code = ask_code(client, outbox)
    assert login(client, otp=code)["result"] == "OK"
    assert login(client, otp=code)["error"] == "BADCODE"


def test_after_five_wrong_answers_the_right_code_is_refused(client, outbox, mesibo_api):
    """Brute force: the code dies after max_attempts wrong answers."""
    mint_ok(mesibo_api)
    code = ask_code(client, outbox)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        assert login(client, otp=wrong)["error"] == "BADCODE"
    assert login(client, otp=code)["error"] == "BADCODE"
    assert len(mesibo_api.calls) == 0


def test_four_wrong_answers_leave_the_code_usable(client, outbox, mesibo_api):
    mint_ok(mesibo_api)
    code = ask_code(client, outbox)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(4):
        login(client, otp=wrong)
    assert login(client, otp=code)["result"] == "OK"


@pytest.mark.parametrize("otp", [["123456"], {"a": 1}, True, 1.5])
def test_otp_of_a_wrong_type_answers_badcode(client, outbox, otp):
    ask_code(client, outbox)
    assert login(client, otp=otp)["error"] == "BADCODE"


def test_code_sent_as_a_number_is_accepted(client, outbox, mesibo_api, clock):
    mint_ok(mesibo_api)
    code = ask_code(client, outbox)
    while code.startswith("0"):  # a leading zero cannot survive as a JSON number; ask again
        clock.advance(61)
        code = ask_code(client, outbox)
    assert login(client, otp=int(code))["result"] == "OK"


@pytest.mark.parametrize(
    "upstream",
    [
        {"body": requests.ConnectTimeout("connect timeout")},
        {"body": requests.ReadTimeout("read timeout")},
        {"body": requests.ConnectionError("refused")},
        {"status": 500, "body": "<html>oops</html>"},
        {"status": 502, "body": ""},
        {"status": 200, "body": "not json"},
        {"status": 200, "json": ["a", "list"]},
        {"status": 200, "json": {"result": False, "error": "AUTHFAIL"}},
        {"status": 200, "json": {"result": True, "user": {}}},
    ],
    ids=[
        "connect-timeout",
        "read-timeout",
        "refused",
        "http-500",
        "http-502",
        "non-json",
        "json-list",
        "authfail",
        "no-token",
    ],
)
def test_upstream_failure_answers_badapp_and_the_code_stays_usable(client, outbox, mesibo_api, upstream):
    code = ask_code(client, outbox)
    mesibo_api.post(API_URL, **upstream)
    assert login(client, otp=code)["error"] == "BADAPP"
    mesibo_api.replace("POST", API_URL, json={"result": True, "user": {"token": "retry-tok"}})
    assert login(client, otp=code)["token"] == "retry-tok"


def test_mesibo_refusing_the_user_answers_baduser_and_keeps_the_code(client, outbox, mesibo_api):
    code = ask_code(client, outbox)
    mesibo_api.post(API_URL, json={"result": False, "error": "BADADDRESS"})
    assert login(client, otp=code)["error"] == "BADUSER"
    mesibo_api.replace("POST", API_URL, json={"result": True, "user": {"token": "t2"}})
    assert login(client, otp=code)["token"] == "t2"


def test_no_app_token_answers_badapp_without_calling_mesibo(make_app, mesibo_api):
    app = make_app(**{"mesibo.app_token": "", "server.development": "true"})
    client = app.test_client()
    code = ask_code(client, services_of(app).sender)
    assert login(client, otp=code)["error"] == "BADAPP"
    assert len(mesibo_api.calls) == 0


def test_two_concurrent_right_answers_mint_exactly_one_token(app, client, outbox, mesibo_api):
    """Single use under concurrency: threads on separate SQLite connections race for one code."""
    call = mint_ok(mesibo_api)
    for round_ in range(5):
        code = ask_code(client, outbox, phone=f"1201555{round_:04d}")
        barrier = threading.Barrier(8)
        answers = []

        def race(code=code, round_=round_, barrier=barrier, answers=answers):
            local = app.test_client()
            barrier.wait()
            answers.append(login(local, otp=code, phone=f"1201555{round_:04d}"))

        threads = [threading.Thread(target=race) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(a["result"] for a in answers) == ["FAIL"] * 7 + ["OK"]
        assert {a.get("error") for a in answers if a["result"] == "FAIL"} == {"BADCODE"}
    assert call.call_count == 5


def test_login_notice_is_off_by_default_and_configurable(make_app, client):
    answer = post(client, {"op": "login", "phone": PHONE, "appid": APPID})
    assert set(answer) == {"op", "ts", "result"}
    app = make_app(**{"login.notice": True, "login.notice_title": "Hi", "login.notice_delay": 30})
    answer = post(app.test_client(), {"op": "login", "phone": "447911123456", "appid": APPID})
    assert answer["title"] == "Hi" and isinstance(answer["message"], str) and answer["delay"] == 30


def test_a_bad_name_is_refused_before_the_code_is_spent(client, outbox, mesibo_api):
    mint_ok(mesibo_api)
    code = ask_code(client, outbox)
    assert login(client, otp=code, name=["not", "a", "name"])["error"] == "BADREQUEST"
    assert login(client, otp=code, name="Ann")["result"] == "OK"


def _sqlite_locker(tmp_path, request):
    locker = holder_of(tmp_path / "test.db", request)
    return (
        {"database.busy_timeout_ms": 200},
        lambda: locker.execute("BEGIN EXCLUSIVE"),
        lambda: locker.execute("ROLLBACK"),
    )


@pytest.fixture(name="locker", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def _locker(request, tmp_path):
    """(configuration, lock, unlock): another process that can take the store's write lock."""
    if request.param == "sqlite":
        yield _sqlite_locker(tmp_path, request)
        return
    if not postgres_url():
        pytest.skip("TEST_DATABASE_URL is not set")
    import psycopg

    with postgres_schema("consume") as url, psycopg.connect(url) as holder:
        yield (
            {"database.url": url, "database.busy_timeout_ms": 200},
            lambda: holder.execute("LOCK TABLE codes IN ACCESS EXCLUSIVE MODE"),
            holder.rollback,
        )


def test_a_code_whose_consume_cannot_be_written_never_logs_in_twice(make_app, mesibo_api, clock, locker):
    """The store is locked by another process while mesibo mints (SQLite: the write lock; PostgreSQL:
    the codes table): the login fails (its token is revoked, best effort) rather than answering OK
    with the code still alive; once the claim lapses the same code logs in exactly once."""
    config, lock, unlock = locker
    app = make_app(**config)
    client, outbox = app.test_client(), services_of(app).sender
    code = ask_code(client, outbox)
    minted = []

    def useradd_while_locked(request):
        minted.append(request)
        if len(minted) == 1:  # another process takes the write lock while mesibo answers the first
            lock()
        return (200, {}, json.dumps({"result": True, "user": {"uid": 7, "token": f"tok-{len(minted)}"}}))

    def op(name):
        return [matchers.json_params_matcher({"op": name}, strict_match=False)]

    mesibo_api.add_callback("POST", API_URL, callback=useradd_while_locked, match=op("useradd"))
    revoked = mesibo_api.add(
        "POST",
        API_URL,
        json={"result": True},
        match=[
            matchers.json_params_matcher(
                {"op": "userset", "user": {"address": PHONE, "token": {"remove": True, "appid": APPID}}},
                strict_match=False,
            )
        ],
    )
    try:
        first = login(client, otp=code)
    finally:
        unlock()
    assert first["result"] == "FAIL" and first["error"] == "INTERNAL"
    assert login(client, otp=code)["error"] == "BADCODE"  # still claimed: no second token now
    clock.advance(services_of(app).login.kit.claim_seconds + 1)
    second = login(client, otp=code)
    assert second["result"] == "OK" and second["token"] == "tok-2"
    assert login(client, otp=code)["error"] == "BADCODE"
    assert len(minted) == 2 and revoked.call_count == 1


def test_a_huge_mesibo_answer_is_refused_without_reading_it_all(make_app, mesibo_api):
    """A 5 MB answer (a misrouted URL, a broken proxy) is BADAPP, and the code stays usable."""
    app = make_app(**{"mesibo.max_answer_bytes": 4096})
    client, outbox = app.test_client(), services_of(app).sender
    code = ask_code(client, outbox)
    mesibo_api.post(API_URL, body=b'{"result": true, "user": {"token": "big"}, "pad": "' + b"x" * 5_000_000 + b'"}')
    assert login(client, otp=code)["error"] == "BADAPP"
    mesibo_api.replace("POST", API_URL, json={"result": True, "user": {"token": "after"}})
    assert login(client, otp=code)["token"] == "after"


def test_the_legacy_style_never_follows_a_redirect(make_app, mesibo_api):
    """The legacy GET carries the app token in its URL: a redirect to another host is not followed."""
    app = make_app(**{"mesibo.api_style": "legacy"})
    client, outbox = app.test_client(), services_of(app).sender
    mesibo_api.get("https://mesibo.test/api.php", status=302, headers={"Location": "https://elsewhere.test/x"})
    elsewhere = mesibo_api.get("https://elsewhere.test/x", json={"result": True, "user": {"token": "t"}})
    assert login(client, otp=ask_code(client, outbox))["error"] == "BADAPP"
    assert elsewhere.call_count == 0
