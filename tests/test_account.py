"""The account's whole life (issue 24): logging out revokes the token, deleting the account from
the app (``deleteaccount``) and from the support command, and the app ids a deployment serves -
against the stand-in for mesibo in both API styles, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from helpers import (
    APP_TOKEN,
    APPID,
    PHONE,
    login,
    post,
    postgres_schema,
    postgres_url,
    services_of,
    user_table,
    wrong,
)

from app.store.audit import EventName
from tools.processes import FakeMesibo

pytestmark = pytest.mark.slow

OTHER_IP = "198.51.100.7"


@pytest.fixture(name="stand_in", scope="module")
def _stand_in():
    fake = FakeMesibo(APP_TOKEN)
    yield fake
    fake.stop()


@pytest.fixture(name="database", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def _database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/account.db"
        return
    if not postgres_url():
        pytest.skip("TEST_DATABASE_URL is not set")
    with postgres_schema("account") as url:
        yield url


@pytest.fixture(name="account_app")
def _account_app(make_app, stand_in, database):
    stand_in.control(fail="none", reset=True)

    def make(style="backend", **extra):
        return make_app(
            **{
                "mesibo.api_url": stand_in.url,
                "mesibo.api_style": style,
                "database.url": database,
                "limits.resend_cooldown_seconds": 0,
                **extra,
            }
        )

    return make


def delete(client, phone=PHONE, *, otp=None, ip=None, **fields):
    body = {"op": "deleteaccount", "appid": APPID, "phone": phone, **fields}
    if otp is not None:
        body["otp"] = otp
    return post(client, body, environ_overrides={"REMOTE_ADDR": ip} if ip else {})


def rows_naming(app, *needles: str) -> list[tuple]:
    """Every row of every table of the service's store that holds one of ``needles``."""
    store = services_of(app).store
    with store._transaction() as cur:
        found = []
        for table in ("codes", "counters", "events", "policy", "tokens"):
            for row in store._exec(cur, f"SELECT * FROM {table}").fetchall():
                if any(needle and needle in str(cell) for cell in row for needle in needles):
                    found.append((table, *row))
    return found


@pytest.mark.parametrize("style", ["backend", "legacy"])
def test_a_user_deletes_their_account_and_nothing_names_them_afterwards(account_app, stand_in, style):
    app = account_app(style)
    client, services = app.test_client(), services_of(app)
    outbox = services.sender
    assert login(client)["result"] == "OK"
    token = login(client, otp=outbox.last_code(PHONE))["token"]
    assert stand_in.token_valid(token)
    login(client)
    login(client, otp=wrong(outbox.last_code(PHONE)), ip=OTHER_IP)  # a lock-out counter from another address
    login_code = outbox.last_code(PHONE)

    assert delete(client) == {"op": "deleteaccount", "ts": delete(client)["ts"], "result": "OK"}
    message = outbox.outbox[-1]
    assert "delete your" in message.text and message.address == PHONE
    deletion_code = message.code
    # a login code never deletes the account, a deletion code never logs in
    assert delete(client, otp=login_code)["error"] == "BADCODE"
    assert login(client, otp=deletion_code)["error"] == "BADCODE"

    blind, subject = services.codes.blind(PHONE), services.auditor.subject(PHONE)
    assert rows_naming(app, PHONE, blind, subject)  # before: the service holds plenty about the phone
    assert delete(client, otp=deletion_code)["result"] == "OK"

    assert not stand_in.token_valid(token)  # mesibo refuses the user's token now
    held = stand_in.user(PHONE)
    assert held["tokens"] == 0 and not held["code"] and not held["named_in_stats"]
    assert rows_naming(app, PHONE, blind, subject) == []
    deleted = services.store.events(event=EventName.DELETED)
    assert len(deleted) == 1 and (deleted[0].subject, deleted[0].shown, deleted[0].client_ip) == ("", "", "")
    assert delete(client, otp=deletion_code)["error"] == "BADCODE"  # the proof is spent


@pytest.mark.parametrize(("fail", "error"), [("baduser", "BADUSER"), ("http500", "BADAPP"), ("authfail", "BADAPP")])
def test_mesibo_refusing_erases_nothing_and_the_code_works_for_a_retry(account_app, stand_in, fail, error):
    app = account_app()
    client, services = app.test_client(), services_of(app)
    token = login(client, otp=(login(client), services.sender.last_code(PHONE))[1])["token"]
    delete(client)
    code = services.sender.last_code(PHONE)
    held_before = rows_naming(app, services.codes.blind(PHONE))
    stand_in.control(fail=fail)
    assert delete(client, otp=code)["error"] == error
    stand_in.control(fail="none")
    assert stand_in.token_valid(token)
    assert len(rows_naming(app, services.codes.blind(PHONE))) == len(held_before)  # nothing erased
    assert delete(client, otp=code)["result"] == "OK"  # the same code, once mesibo answers
    assert not stand_in.token_valid(token)


def test_deleting_counts_against_the_same_limits_as_a_login(account_app):
    app = account_app(**{"limits.resend_cooldown_seconds": 60})
    client = app.test_client()
    assert login(client)["result"] == "OK"
    refused = delete(client)
    assert refused["error"] == "RATELIMIT" and refused["retry_after"] > 0  # the login's cooldown holds


def test_a_password_user_deletes_in_one_step(account_app, stand_in, tmp_path):
    app = account_app(**user_table(tmp_path, {"ann": ("s3cret-pass", "ann@example.org", "Ann")}))
    client = app.test_client()
    body = {"appid": APPID, "user": "ann", "password": "s3cret-pass"}
    token = post(client, {"op": "login", **body})["token"]
    assert post(client, {"op": "deleteaccount", **body, "password": "wrong"})["error"] == "BADLOGIN"
    assert stand_in.token_valid(token)
    assert post(client, {"op": "deleteaccount", **body})["result"] == "OK"
    assert not stand_in.token_valid(token) and stand_in.user("ann@example.org")["tokens"] == 0
    services = services_of(app)
    assert rows_naming(app, services.codes.blind("user:ann"), services.auditor.subject("user:ann")) == []


def test_mesibo_managed_codes_are_proved_by_mesibo_before_the_user_goes(account_app, stand_in):
    app = account_app(**{"auth.method": "mesibo_otp"})
    client, outbox = app.test_client(), services_of(app).sender
    token = login(client, otp=(login(client), outbox.last_code(PHONE))[1])["token"]
    assert delete(client)["result"] == "OK"
    code = outbox.last_code(PHONE)
    assert delete(client, otp=wrong(code))["error"] == "BADCODE"  # mesibo refused it: nobody deleted
    assert stand_in.token_valid(token)
    assert delete(client, otp=code)["result"] == "OK"
    assert not stand_in.token_valid(token) and stand_in.user(PHONE)["tokens"] == 0


def test_an_appid_off_the_list_is_refused_before_any_work(account_app, stand_in):
    app = account_app(**{"server.appids": ["com.example.android", "com.example.ios"]})
    client, services = app.test_client(), services_of(app)
    for op in ("login", "deleteaccount"):
        assert post(client, {"op": op, "appid": "com.other.app", "phone": PHONE})["error"] == "BADAPPID"
    assert services.sender.outbox == [] and rows_naming(app, services.codes.blind(PHONE)) == []
    assert login(client, appid="com.example.ios")["result"] == "OK"
    answer = login(client, appid="com.example.ios", otp=services.sender.last_code(PHONE))
    assert answer["result"] == "OK" and stand_in.stats()["tokens"][-1]["appid"] == "com.example.ios"


def test_the_support_command_deletes_an_account(account_app, stand_in):
    app = account_app()
    client, services = app.test_client(), services_of(app)
    token = login(client, otp=(login(client), services.sender.last_code(PHONE))[1])["token"]
    runner = app.test_cli_runner()
    kept = runner.invoke(args=["delete-account", PHONE], input="n\n")
    assert kept.exit_code != 0 and stand_in.token_valid(token)  # not confirmed: nothing done
    stand_in.control(fail="http500")
    refused = runner.invoke(args=["delete-account", PHONE, "--yes"])
    assert refused.exit_code != 0 and "nothing was erased" in refused.output
    stand_in.control(fail="none")
    done = runner.invoke(args=["delete-account", f"+{PHONE}", "--yes"])
    assert done.exit_code == 0, done.output
    assert "erased" in done.output and PHONE not in done.output
    assert not stand_in.token_valid(token)
    assert rows_naming(app, PHONE, services.codes.blind(PHONE), services.auditor.subject(PHONE)) == []


@pytest.mark.parametrize("style", ["backend", "legacy"])
def test_logout_revokes_the_token_at_mesibo(account_app, stand_in, style):
    app = account_app(style)
    client, services = app.test_client(), services_of(app)
    token = login(client, otp=(login(client), services.sender.last_code(PHONE))[1])["token"]
    other_app = login(
        client,
        appid="com.example.other",
        otp=(login(client, appid="com.example.other"), services.sender.last_code(PHONE))[1],
    )["token"]
    # the store keeps whose the token is only for the token's holder: no address in clear
    assert rows_naming(app, services.tokens.lookup(token)) and not [
        row for row in rows_naming(app, PHONE) if row[0] == "tokens"
    ]
    assert post(client, {"op": "logout", "token": token}) == {"op": "logout", "ts": services.now(), "result": "OK"}
    assert not stand_in.token_valid(token)  # mesibo refuses it now
    assert stand_in.token_valid(other_app)  # the same user's token for another app stays
    assert rows_naming(app, services.tokens.lookup(token)) == []
    revoke = [r for r in stand_in.stats()["requests"] if r.get("op") == "userset"][-1]
    assert revoke["app_token_sent"] and token not in str(revoke)  # the app's token, never the user's
    assert post(client, {"op": "logout", "token": token})["result"] == "OK"  # again: nothing to do


def test_a_token_row_opens_only_with_its_token(make_app):
    services = services_of(make_app())
    row = services.tokens.record("user-token-1", PHONE, APPID, 1_800_000_000)
    assert PHONE not in row.sealed and row.owner == services.codes.blind(PHONE)
    assert services.tokens.owner("user-token-1", row.sealed, row.appid) == PHONE
    assert services.tokens.owner("user-token-2", row.sealed, row.appid) is None
    assert services.tokens.owner("user-token-1", row.sealed, "com.other") is None  # the app id is bound too
    assert services.tokens.lookup("user-token-1") != services.tokens.lookup("user-token-2")


def test_an_app_id_with_its_own_mesibo_app_mints_there(account_app, stand_in):
    """One deployment for the production and the staging app: each app id's tokens come from its own
    mesibo app (its app token, its API URL); ``flask check`` asks each."""
    staging = FakeMesibo("staging-app-token-0123")
    try:
        app = account_app(
            **{
                "server.appids": [APPID, "com.example.staging"],
                "mesibo.apps": {"com.example.staging": {"app_token": "staging-app-token-0123", "api_url": staging.url}},
            }
        )
        client, services = app.test_client(), services_of(app)
        for appid, where in ((APPID, stand_in), ("com.example.staging", staging)):
            login(client, appid=appid)
            answer = login(client, appid=appid, otp=services.sender.last_code(PHONE))
            assert answer["result"] == "OK" and where.stats()["tokens"][-1]["token"] == answer["token"]
        assert [row["appid"] for row in staging.stats()["tokens"]] == ["com.example.staging"]
        assert "staging-app-token-0123" in services.settings.secrets()  # kept out of every log line
        checked = app.test_cli_runner().invoke(args=["check"])
        assert checked.exit_code == 0, checked.output
        assert f"mesibo for com.example.staging ({staging.url}): mesibo accepted the app token" in checked.output
        staging.control(fail="authfail")
        assert app.test_cli_runner().invoke(args=["check"]).exit_code == 1
    finally:
        staging.stop()
