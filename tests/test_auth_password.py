"""LDAP, RADIUS and the operator's own user table, against real servers the tests start: Debian's
slapd (with LDAPS, StartTLS and a password policy) and FreeRADIUS, and SQLite/PostgreSQL tables."""

from __future__ import annotations

import time

import pytest
from helpers import APPID, expect_useradd, mint_ok, post, postgres_schema, postgres_url, services_of, sqlite_file

from tools.directory import LDIF
from tools.processes import FreeRadius, Slapd, free_port

pytestmark = pytest.mark.slow

S = Slapd.SUFFIX


@pytest.fixture(name="slapd", scope="module")
def _slapd(tmp_path_factory):
    if not Slapd.available():
        pytest.skip("slapd is not installed (.ci/run installs Debian's slapd)")
    server = Slapd(tmp_path_factory.mktemp("ldap"), LDIF)
    yield server
    server.stop()


def ldap_config(slapd, **extra):
    return {
        "auth.method": "ldap",
        "auth.ldap.url": slapd.url,
        "auth.ldap.bind_dn": f"uid=finder,{S}",
        "auth.ldap.bind_password": "finder-secret",
        "auth.ldap.search_base": f"ou=people,{S}",
        "auth.ldap.timeout": 2.0,
        **extra,
    }


def password_login(client, user, password, ip="203.0.113.5"):
    return post(
        client,
        {"op": "login", "appid": APPID, "user": user, "password": password},
        environ_overrides={"REMOTE_ADDR": ip},
    )


def test_ldap_search_then_bind_logs_in_with_the_users_attributes(make_app, slapd, mesibo_api):
    call = expect_useradd(
        mesibo_api,
        {"address": "corp:ann", "name": "Ann Example", "token": {"appid": APPID, "expiry": 525600, "v2": True}},
        "ldap-tok",
    )
    app = make_app(**ldap_config(slapd, **{"auth.ldap.address_prefix": "corp:"}))
    answer = password_login(app.test_client(), "ann", "ann-password-1")
    assert answer["result"] == "OK" and answer["token"] == "ldap-tok" and call.call_count == 1


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("ann", "wrong"),
        ("nobody", "ann-password-1"),
        ("locked", "locked-password-1"),
        ("ann", ""),
        ("*", "x"),
        ("ann)(uid=*", "ann-password-1"),
    ],
    ids=["wrong-password", "unknown-user", "locked-account", "empty-password", "wildcard", "filter-injection"],
)
def test_ldap_refusals_are_all_badlogin(make_app, slapd, mesibo_api, user, password):
    app = make_app(**ldap_config(slapd))
    answer = password_login(app.test_client(), user, password)
    assert answer["result"] == "FAIL" and answer["error"] == "BADLOGIN"
    assert len(mesibo_api.calls) == 0


def test_an_unknown_ldap_user_costs_the_directory_what_a_known_one_does(make_app, slapd):
    """Issue 21, item 5: an unknown user's password is bound too (to a DN that does not exist), so
    the answer's time does not tell whether the account exists: the same binds, in the same order.
    (Measured: SECURITY.md.)"""
    app = make_app(**ldap_config(slapd))
    client = app.test_client()
    seen = len(slapd.binds())
    assert password_login(client, "ann", "wrong")["error"] == "BADLOGIN"
    known = slapd.binds()[seen:]
    assert password_login(client, "nobody", "wrong")["error"] == "BADLOGIN"
    unknown = slapd.binds()[len(known) + seen :]
    assert known == [f"uid=finder,{S}", f"uid=ann,ou=people,{S}"]
    assert unknown == [f"uid=finder,{S}", f"cn=messenger-backend-no-such-user,ou=people,{S}"]


def test_ldap_direct_bind_by_dn_template_and_a_group(make_app, slapd, mesibo_api):
    mint_ok(mesibo_api)
    app = make_app(
        **{
            "auth.method": "ldap",
            "auth.ldap.url": slapd.url,
            "auth.ldap.user_dn_template": f"uid={{user}},ou=people,{S}",
            "auth.ldap.group_dn": f"cn=messenger,{S}",
            "auth.ldap.address_attribute": "mail",
        }
    )
    client = app.test_client()
    assert password_login(client, "ann", "ann-password-1")["result"] == "OK"
    assert password_login(client, "bob", "bob-password-1")["error"] == "BADLOGIN"  # not in the group


@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_ldap_over_tls_with_a_ca_file(make_app, slapd, mesibo_api, tls):
    mint_ok(mesibo_api)
    url = slapd.tls_url if tls == "ldaps" else slapd.url
    trusted = make_app(
        **ldap_config(
            slapd,
            **{"auth.ldap.url": url, "auth.ldap.start_tls": tls == "starttls", "auth.ldap.ca_file": str(slapd.ca)},
        )
    )
    answer = password_login(trusted.test_client(), "ann", "ann-password-1")
    assert answer["result"] == "OK", answer
    untrusted = make_app(**ldap_config(slapd, **{"auth.ldap.url": url, "auth.ldap.start_tls": tls == "starttls"}))
    assert password_login(untrusted.test_client(), "ann", "ann-password-1")["error"] == "INTERNAL"


def test_ldap_server_down_is_a_clean_envelope_within_the_timeout(make_app):
    app = make_app(
        **{
            "auth.method": "ldap",
            "auth.ldap.url": f"ldap://127.0.0.1:{free_port()}",
            "auth.ldap.user_dn_template": f"uid={{user}},{S}",
            "auth.ldap.timeout": 1.0,
        }
    )
    started = time.monotonic()
    assert password_login(app.test_client(), "ann", "x")["error"] == "INTERNAL"
    assert time.monotonic() - started < 3


def test_ldap_guessing_is_bounded_by_the_limits(make_app, slapd):
    app = make_app(**ldap_config(slapd))
    client = app.test_client()
    answers = [password_login(client, "ann", f"guess-{n}")["error"] for n in range(11)]
    assert answers == ["BADLOGIN"] * 10 + ["RATELIMIT"]
    assert password_login(client, "ann", "ann-password-1", ip="192.0.2.8")["error"] != "RATELIMIT"  # owner


def test_look_alike_forms_of_a_user_id_count_against_the_same_account(make_app, slapd, mesibo_api):
    """slapd matches ids after Unicode compatibility folding: each of these binds as ann. They all
    count against ann's lock-out (they used to be accounts of their own for the limits)."""
    app = make_app(**ldap_config(slapd, **{"limits.failures_per_phone_per_day": 4}))
    client = app.test_client()
    mint_ok(mesibo_api, "ann-tok")
    forms = ["ann", "ＡＮＮ", "\U0001d41a\U0001d427\U0001d427", "\u24d0nn", "Ann"]  # fullwidth, bold, circled
    assert password_login(client, "\uff41\uff4e\uff4e", "ann-password-1")["result"] == "OK"  # it is ann
    answers = [
        password_login(client, form, "a wrong guess", ip=f"198.51.100.{n}")["error"] for n, form in enumerate(forms)
    ]
    assert answers == ["BADLOGIN"] * 4 + ["RATELIMIT"], answers
    # the fold of any form is locked: the right password from yet another form and address waits too
    assert password_login(client, "ａｎｎ", "ann-password-1", ip="198.51.100.99")["error"] == "RATELIMIT"


# -- RADIUS -------------------------------------------------------------------------------------

RADIUS_SECRET = "radius-shared-secret-1"


@pytest.fixture(name="radius", scope="module")
def _radius(tmp_path_factory):
    if not FreeRadius.available():
        pytest.skip("freeradius is not installed (.ci/run installs Debian's freeradius)")
    server = FreeRadius(
        tmp_path_factory.mktemp("radius"),
        RADIUS_SECRET,
        'ann Cleartext-Password := "ann-radius-1"\nbob Cleartext-Password := "bob-radius-1"\n',
    )
    yield server
    server.stop()


def radius_app(make_app, servers, **extra):
    # FreeRADIUS delays an Access-Reject by a second (reject_delay): the timeout must outlast it
    return make_app(
        **{
            "auth.method": "radius",
            "auth.radius.servers": servers,
            "auth.radius.secret": RADIUS_SECRET,
            "auth.radius.timeout": 2.0,
            **extra,
        }
    )


def test_radius_access_accept_logs_in(make_app, radius, mesibo_api):
    call = expect_useradd(mesibo_api, {"address": "ann", "token": {"appid": APPID, "expiry": 525600, "v2": True}})
    app = radius_app(make_app, [f"127.0.0.1:{radius.port}"])
    assert password_login(app.test_client(), "ann", "ann-radius-1")["result"] == "OK"
    assert call.call_count == 1


@pytest.mark.parametrize(("user", "password"), [("ann", "wrong"), ("nobody", "x"), ("ann", "")])
def test_radius_access_reject_is_badlogin(make_app, radius, mesibo_api, user, password):
    app = radius_app(make_app, [f"127.0.0.1:{radius.port}"])
    assert password_login(app.test_client(), user, password)["error"] == "BADLOGIN"
    assert len(mesibo_api.calls) == 0


def test_radius_tries_the_next_server_and_answers_clean_when_none_does(make_app, radius, mesibo_api):
    mint_ok(mesibo_api)
    down = f"127.0.0.1:{free_port()}"
    app = radius_app(make_app, [down, f"127.0.0.1:{radius.port}"])
    assert password_login(app.test_client(), "bob", "bob-radius-1")["result"] == "OK"
    app = radius_app(make_app, [down], **{"auth.radius.retries": 1, "auth.radius.timeout": 0.5})
    started = time.monotonic()
    assert password_login(app.test_client(), "bob", "bob-radius-1")["error"] == "INTERNAL"
    assert time.monotonic() - started < 0.5 * 2 + 1


def test_radius_with_the_wrong_secret_never_logs_in(make_app, radius):
    app = radius_app(make_app, [f"127.0.0.1:{radius.port}"], **{"auth.radius.secret": "not-the-secret"})
    assert password_login(app.test_client(), "ann", "ann-radius-1")["result"] == "FAIL"


# -- your own user table --------------------------------------------------------------------------


def user_table(execute):
    import bcrypt
    from argon2 import PasswordHasher

    execute("CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT, address TEXT, name TEXT)")
    execute("INSERT INTO users VALUES ('ann', ?, 'ann@corp', 'Ann')", (PasswordHasher().hash("ann-sql-1"),))
    execute(
        "INSERT INTO users VALUES ('bob', ?, 'bob@corp', 'Bob')",
        (bcrypt.hashpw(b"bob-sql-1", bcrypt.gensalt(rounds=4)).decode(),),
    )


@pytest.fixture(name="users_url", params=["sqlite", "postgres"])
def _users_url(request, tmp_path):
    if request.param == "sqlite":
        with sqlite_file(tmp_path / "users.db") as db:
            user_table(db.execute)
        yield f"sqlite:///{tmp_path}/users.db"
        return
    if not postgres_url():
        pytest.skip("TEST_DATABASE_URL is not set")
    import psycopg

    with postgres_schema("users") as url, psycopg.connect(url, autocommit=True) as db:
        user_table(lambda sql, params=(): db.execute(sql.replace("?", "%s"), params))
        yield url


def test_own_user_table_with_argon2_and_bcrypt(make_app, users_url, mesibo_api):
    mint_ok(mesibo_api)
    app = make_app(**{"auth.method": "sql", "auth.sql.url": users_url})
    client = app.test_client()
    assert password_login(client, "ann", "ann-sql-1")["result"] == "OK"  # argon2
    assert password_login(client, "bob", "bob-sql-1")["result"] == "OK"  # bcrypt
    assert password_login(client, "ann", "bob-sql-1")["error"] == "BADLOGIN"
    assert password_login(client, "carol", "x")["error"] == "BADLOGIN"
    assert password_login(client, "ann", " ann-sql-1")["error"] == "BADLOGIN"  # passwords are not trimmed


def test_a_bcrypt_table_cannot_be_told_apart_by_answer_or_work(make_app, tmp_path, mesibo_api):
    """An over-long password is a wrong password, counted (it answered INTERNAL for a bcrypt user and
    BADLOGIN for an unknown one); an unknown user is checked against a hash of the table's own
    algorithm and cost (it was argon2: 218 ms against bcrypt cost 4's 2.4 ms)."""
    import bcrypt

    from app.auth.sql import verify

    long_password = "é" * 50  # 100 bytes
    with sqlite_file(tmp_path / "users.db") as db:
        db.execute("CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT, address TEXT, name TEXT)")
        db.execute(
            "INSERT INTO users VALUES ('bob', ?, 'bob@corp', 'Bob')",
            (bcrypt.hashpw(b"bob-sql-1", bcrypt.gensalt(rounds=5)).decode(),),
        )
    app = make_app(
        **{
            "auth.method": "sql",
            "auth.sql.url": f"sqlite:///{tmp_path}/users.db",
            "limits.failures_per_phone_per_ip_per_day": 2,
        }
    )
    client, login = app.test_client(), services_of(app).login
    assert [password_login(client, user, long_password)["error"] for user in ("bob", "carol")] == ["BADLOGIN"] * 2
    assert password_login(client, "bob", long_password)["error"] == "BADLOGIN"
    assert password_login(client, "bob", "bob-sql-1")["error"] == "RATELIMIT"  # the long ones were counted
    assert login.dummy.startswith("$2b$05$")  # learned from bob's row: the same algorithm and cost
    assert not verify(login.dummy, long_password)
    configured = make_app(
        **{
            "auth.method": "sql",
            "auth.sql.url": f"sqlite:///{tmp_path}/users.db",
            "auth.sql.dummy_hash": "$2b$12$" + "a" * 53,
        }
    )
    assert services_of(configured).login.dummy.startswith("$2b$12$")
