"""The Kerberos login (issue 26, item 1) against a real MIT KDC that the tests start (k5test makes a
throwaway realm): a right ticket mints, in the header or the body; an expired ticket, a ticket for
another service, a replayed token and a principal of a realm not allowed are refused; a request
without a token gets the Negotiate challenge; mutual authentication answers the service's token."""

from __future__ import annotations

import base64
import os
import shutil
import time

import pytest
from helpers import API_URL, APPID, post, services_of
from responses import matchers

pytestmark = pytest.mark.slow

gssapi = pytest.importorskip("gssapi", reason="gssapi is installed with the test extra (needs Debian's libkrb5-dev)")
if shutil.which("krb5kdc", path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
    pytest.skip("a KDC is needed: apt-get install krb5-kdc krb5-admin-server krb5-user", allow_module_level=True)

from k5test import K5Realm  # noqa: E402 - after the checks above

SERVICE = "HTTP/localhost"


@pytest.fixture(name="realm", scope="module")
def _realm():
    # a clock skew of 1 s, not the default 5 minutes: an expired ticket is refused at once
    realm = K5Realm(create_host=False, get_creds=False, krb5_conf={"libdefaults": {"clockskew": "1"}})
    realm.addprinc(f"{SERVICE}@{realm.realm}")
    realm.extract_keytab(f"{SERVICE}@{realm.realm}", realm.keytab)
    realm.addprinc(f"HTTP/other.example@{realm.realm}")  # a service this one is not
    saved = dict(os.environ)
    os.environ.update(realm.env)  # the client side (and the acceptor's krb5.conf) in this process
    os.environ["KRB5RCACHEDIR"] = realm.tmpdir  # the replay cache, where the test can write
    try:
        realm.kinit(realm.user_princ, realm.password("user"))
        yield realm
    finally:
        os.environ.clear()
        os.environ.update(saved)
        realm.stop()


@pytest.fixture(name="kerberos_app")
def _kerberos_app(make_app, realm):
    def make(**extra):
        return make_app(
            **{
                "auth.method": "kerberos",
                "auth.kerberos.keytab": realm.keytab,
                "auth.kerberos.service": f"{SERVICE}@{realm.realm}",
                "auth.kerberos.realms": [realm.realm],
                **extra,
            }
        )

    return make


def negotiate_token(target: str, mutual: bool = False) -> str:
    """What an enrolled client sends: an AP-REQ for ``target`` from the user's ticket cache."""
    name = gssapi.Name(target, gssapi.NameType.kerberos_principal)
    flags = [gssapi.RequirementFlag.mutual_authentication] if mutual else []
    context = gssapi.SecurityContext(name=name, usage="initiate", flags=flags)
    return base64.b64encode(context.step()).decode()


def expect_mint(mesibo_api, address: str):
    expected = matchers.json_params_matcher({"op": "useradd", "user": {"address": address}}, strict_match=False)
    return mesibo_api.post(API_URL, json={"result": True, "user": {"token": "user-token-krb"}}, match=[expected])


def test_a_ticket_in_the_negotiate_header_logs_in(kerberos_app, realm, mesibo_api):
    minted = expect_mint(mesibo_api, "user")
    client = kerberos_app().test_client()
    token = negotiate_token(f"{SERVICE}@{realm.realm}")
    answer = client.post("/", json={"op": "login", "appid": APPID}, headers={"Authorization": f"Negotiate {token}"})
    assert answer.get_json()["result"] == "OK" and answer.get_json()["token"] == "user-token-krb"
    assert minted.call_count == 1


def test_the_token_may_come_in_the_body_and_the_address_is_configurable(kerberos_app, realm, mesibo_api):
    expect_mint(mesibo_api, f"user@{realm.realm.lower()}")
    app = kerberos_app(**{"auth.kerberos.address": "{user}@" + realm.realm.lower()})
    token = negotiate_token(f"{SERVICE}@{realm.realm}")
    assert post(app.test_client(), {"op": "login", "appid": APPID, "negotiate": token})["result"] == "OK"


def test_mutual_authentication_answers_the_services_token(kerberos_app, realm, mesibo_api):
    expect_mint(mesibo_api, "user")
    client = kerberos_app().test_client()
    name = gssapi.Name(f"{SERVICE}@{realm.realm}", gssapi.NameType.kerberos_principal)
    context = gssapi.SecurityContext(name=name, usage="initiate", flags=[gssapi.RequirementFlag.mutual_authentication])
    first = base64.b64encode(context.step()).decode()
    answer = client.post("/", json={"op": "login", "appid": APPID}, headers={"Authorization": f"Negotiate {first}"})
    body = answer.get_json()
    assert body["result"] == "OK" and answer.headers["WWW-Authenticate"] == f"Negotiate {body['negotiate']}"
    context.step(base64.b64decode(body["negotiate"]))  # the client checks the service: it is the one it asked for
    assert context.complete


def test_no_token_is_the_negotiate_challenge(kerberos_app):
    answer = kerberos_app().test_client().post("/", json={"op": "login", "appid": APPID})
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Negotiate"
    assert answer.get_json()["error"] == "BADTOKEN" and answer.get_json()["op"] == "login"


@pytest.mark.parametrize("case", ["another service", "replayed", "not base64", "garbage", "realm not allowed"])
def test_a_ticket_that_is_not_for_us_is_refused(kerberos_app, realm, mesibo_api, case):
    minted = expect_mint(mesibo_api, "user")
    app = kerberos_app(**({"auth.kerberos.realms": ["CORP.EXAMPLE"]} if case == "realm not allowed" else {}))
    client = app.test_client()
    token = {
        "another service": lambda: negotiate_token(f"HTTP/other.example@{realm.realm}"),
        "not base64": lambda: "%%% not base64 %%%",
        "garbage": lambda: base64.b64encode(b"\x60\x01garbage").decode(),
    }.get(case, lambda: negotiate_token(f"{SERVICE}@{realm.realm}"))()
    body = {"op": "login", "appid": APPID, "negotiate": token}
    if case == "replayed":
        assert post(client, body)["result"] == "OK"  # the first time
    assert post(client, body)["error"] == "BADTOKEN"
    assert minted.call_count == (1 if case == "replayed" else 0)
    events = services_of(app).store.events(event="wrong")
    assert events and events[0].detail.startswith("realm" if case == "realm not allowed" else "kerberos")


def test_an_expired_ticket_is_refused(kerberos_app, realm, mesibo_api):
    expect_mint(mesibo_api, "user")
    realm.kinit(realm.user_princ, realm.password("user"), flags=["-l", "4s"])
    try:
        token = negotiate_token(f"{SERVICE}@{realm.realm}")
        time.sleep(6)  # past the ticket's end and the 1 s of clock skew the realm allows
        answer = post(kerberos_app().test_client(), {"op": "login", "appid": APPID, "negotiate": token})
    finally:
        realm.kinit(realm.user_princ, realm.password("user"))
    assert answer["error"] == "BADTOKEN"


def test_a_keytab_the_service_cannot_use_is_its_own_error_not_the_users(kerberos_app, realm, tmp_path):
    app = kerberos_app(**{"auth.kerberos.keytab": str(tmp_path / "missing.keytab")})
    token = negotiate_token(f"{SERVICE}@{realm.realm}")
    assert post(app.test_client(), {"op": "login", "appid": APPID, "negotiate": token})["error"] == "INTERNAL"
