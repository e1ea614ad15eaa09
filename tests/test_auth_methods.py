"""Login methods other than phone: e-mail codes over real SMTP, OpenID Connect ID tokens, a custom method."""

from __future__ import annotations

import email
import json
import re
import time
from pathlib import Path

import jwt
import pytest
import responses
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import APPID, expect_useradd, mint_ok, post, services_of

from tools.processes import free_port

ISSUER = "https://issuer.example.com"
CLIENT_ID = "my-client.apps.example.com"
JWKS_URL = f"{ISSUER}/jwks"


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"mailer" and auth_data.password == b"pw-123456"
    return AuthResult(success=ok)


@pytest.fixture(name="smtp_server")
def _smtp_server():
    inbox = _Inbox()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), authenticator=_authenticator, auth_require_tls=False
    )
    controller.start()
    yield controller.port, inbox
    controller.stop()


def email_app(make_app, port, **extra):
    return make_app(
        **{
            "auth.method": "email",
            "sender.name": "smtp",
            "sender.smtp.host": "127.0.0.1",
            "sender.smtp.port": port,
            "sender.smtp.security": "none",
            "sender.smtp.from_address": "codes@example.org",
            **extra,
        }
    )


def test_email_login_delivers_the_code_over_real_smtp(make_app, smtp_server, mesibo_api):
    port, inbox = smtp_server
    user = {"address": "ann@example.org", "token": {"appid": APPID, "expiry": 525600, "v2": True}}
    call = expect_useradd(mesibo_api, user, "mail-tok")
    app = email_app(make_app, port, **{"sender.smtp.username": "mailer", "sender.smtp.password": "pw-123456"})
    client = app.test_client()
    assert post(client, {"op": "login", "email": " Ann@Example.ORG ", "appid": APPID})["result"] == "OK"
    [mail] = inbox.messages
    assert mail["To"] == "ann@example.org" and mail["From"] == "codes@example.org"
    assert mail["Subject"] == "Your Mesibo Messenger verification code"
    code = re.match(r"(\d{6}) is your", mail.get_payload()).group(1)
    answer = post(client, {"op": "login", "email": "ann@example.org", "appid": APPID, "otp": code})
    assert answer["token"] == "mail-tok" and answer["phone"] == "ann@example.org"
    assert call.call_count == 1


def _certificate(folder):
    """A self-signed certificate for 127.0.0.1, as an internal mail server might have."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_code_over_tls_with_login(make_app, tmp_path, security):
    """STARTTLS and implicit TLS, with the server's certificate verified against the configured CA."""
    import ssl

    cert_path, key_path = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    inbox = _Inbox()
    port = free_port()
    if security == "starttls":  # the server refuses AUTH until the connection is upgraded
        options = {"tls_context": server_tls, "require_starttls": True, "auth_require_tls": True}
    else:  # TLS from the first byte (aiosmtpd does not count implicit TLS for auth_require_tls)
        options = {"ssl_context": server_tls, "auth_require_tls": False}
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=_authenticator, server_hostname="127.0.0.1", **options
    )
    controller.start()
    try:
        app = email_app(
            make_app,
            port,
            **{
                "sender.smtp.security": security,
                "sender.smtp.ca_file": str(cert_path),
                "sender.smtp.username": "mailer",
                "sender.smtp.password": "pw-123456",
            },
        )
        assert post(app.test_client(), {"op": "login", "email": "bo@example.org", "appid": APPID})["result"] == "OK"
        [mail] = inbox.messages
        assert mail["To"] == "bo@example.org"
        # without the server's CA the certificate is refused: no code goes out unencrypted or unverified
        login = {"sender.smtp.username": "mailer", "sender.smtp.password": "pw-123456"}
        untrusting = email_app(make_app, port, **{"sender.smtp.security": security, "sender.timeout": 2.0, **login})
        answer = post(untrusting.test_client(), {"op": "login", "email": "cy@example.org", "appid": APPID})
        assert answer["error"] == "SENDFAIL" and len(inbox.messages) == 1
    finally:
        controller.stop()


def test_the_limits_count_an_inbox_not_each_spelling_of_it(make_app, smtp_server):
    """+tags (and dots at the domains that ignore them) reach one inbox: the cooldown and the caps
    count the inbox (35 codes reached one inbox in seconds through +tags)."""
    port, inbox = smtp_server
    client = email_app(make_app, port, **{"limits.sends_per_phone_per_hour": 3}).test_client()
    spellings = ["ann@example.org", "ann+1@example.org", "ann+promo@example.org", "Ann+x@Example.org"]
    answers = [post(client, {"op": "login", "email": spelling, "appid": APPID}) for spelling in spellings]
    assert [a.get("error") for a in answers] == [None, "RATELIMIT", "RATELIMIT", "RATELIMIT"]  # the cooldown
    assert len(inbox.messages) == 1
    dotted = [post(client, {"op": "login", "email": e, "appid": APPID}) for e in ("a.b@gmail.com", "ab@gmail.com")]
    assert [a.get("error") for a in dotted] == [None, "RATELIMIT"]
    other = post(client, {"op": "login", "email": "a.b@example.org", "appid": APPID})  # dots count elsewhere
    assert other["result"] == "OK" and len(inbox.messages) == 3


def test_status_shows_a_tagged_address_code_and_trail_and_its_inboxs_limits(make_app, smtp_server):
    """``status ann+1@...`` finds that address's live code and trail (stored under it) and the limits
    its inbox counts (``ann@...``); it used to look the code up under the inbox and find none."""
    port, _ = smtp_server
    app = email_app(make_app, port)
    assert post(app.test_client(), {"op": "login", "email": "ann+1@example.org", "appid": APPID})["result"] == "OK"
    shown = app.test_cli_runner().invoke(args=["status", "ann+1@example.org"]).output
    live = shown.split("live code", 1)[1].split("\nlimits", 1)[0]
    limits = shown.split("\nlimits", 1)[1].split("\nlist ", 1)[0]
    trail = shown.split("last events", 1)[1]
    assert APPID in live and "waiting for the answer" in live, shown
    assert "cooldown" in limits, shown
    assert " sent " in trail, shown


def test_email_login_refuses_a_bad_address(make_app, smtp_server):
    port, inbox = smtp_server
    client = email_app(make_app, port).test_client()
    for bad in ["not-an-email", "", "a@", ["x@example.org"]]:
        assert post(client, {"op": "login", "email": bad, "appid": APPID})["error"] == "BADEMAIL"
    assert inbox.messages == []


def test_wrong_smtp_password_answers_sendfail(make_app, smtp_server):
    port, _ = smtp_server
    app = email_app(
        make_app, port, **{"sender.smtp.username": "mailer", "sender.smtp.password": "wrong-pw", "sender.timeout": 1.0}
    )
    assert post(app.test_client(), {"op": "login", "email": "a@example.org", "appid": APPID})["error"] == "SENDFAIL"


# -- OpenID Connect -----------------------------------------------------------


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key, kid):
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def id_token(key, kid, **claims):
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "user-123",
        "iat": now,
        "exp": now + 600,
        "email": "Ann@Example.org",
        "email_verified": True,
        "name": "Ann",
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(name="oidc")
def _oidc(make_app, mesibo_api):
    key = new_key()
    mesibo_api.get(f"{ISSUER}/.well-known/openid-configuration", json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    jwks = mesibo_api.get(JWKS_URL, json={"keys": [jwk_of(key, "k1")]})
    app = make_app(**{"auth.method": "oidc", "auth.oidc.issuer": ISSUER, "auth.oidc.audience": [CLIENT_ID]})
    return app, key, jwks


def login_with(client, token, **extra):
    return post(client, {"op": "login", "appid": APPID, "id_token": token, **extra})


def _b64(value) -> str:
    import base64

    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "ES256", "kid": "k1"},  # names the RSA key: PyJWT failed on the key (INTERNAL, a traceback)
        {"alg": "PS256", "kid": {"a": 1}},
        {"alg": ["RS256"], "kid": "k1"},
        ["RS256"],
        {"alg": "none", "kid": "k1"},
        {"alg": "HS256", "kid": "k1"},
    ],
)
def test_an_id_token_of_any_shape_answers_badtoken(oidc, header, caplog):
    app, _, _ = oidc
    token = f"{_b64(header)}.{_b64({'sub': 'x', 'iss': ISSUER, 'aud': CLIENT_ID})}.{_b64(b'signature')}"
    answer = login_with(app.test_client(), token)
    assert answer["error"] == "BADTOKEN", answer
    assert "Traceback" not in caplog.text


def test_a_valid_id_token_logs_in_as_its_subject(oidc, mesibo_api):
    app, key, _ = oidc
    user = {"address": "user-123", "name": "Ann", "token": {"appid": APPID, "expiry": 525600, "v2": True}}
    call = expect_useradd(mesibo_api, user, "oidc-tok")
    answer = login_with(app.test_client(), id_token(key, "k1"))
    assert answer["result"] == "OK" and answer["token"] == "oidc-tok"
    assert call.call_count == 1


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda key: id_token(new_key(), "k1"), id="wrong-signature"),
        pytest.param(lambda key: id_token(key, "k1", aud="someone-else"), id="wrong-audience"),
        pytest.param(lambda key: id_token(key, "k1", iss="https://evil.example"), id="wrong-issuer"),
        pytest.param(lambda key: id_token(key, "k1", exp=int(time.time()) - 3600), id="expired"),
        pytest.param(lambda key: id_token(key, "unknown-kid"), id="unknown-key-id"),
        pytest.param(
            lambda key: jwt.encode(
                {"iss": ISSUER, "aud": CLIENT_ID, "sub": "x", "iat": 1, "exp": 2**40},
                "secret-hmac-key-0123456789abcdef",
                algorithm="HS256",
                headers={"kid": "k1"},
            ),
            id="hmac-algorithm",
        ),
        pytest.param(lambda key: "not.a.jwt", id="garbage"),
        pytest.param(lambda key: "", id="missing"),
    ],
)
def test_a_forged_or_invalid_id_token_is_refused(oidc, forge):
    app, key, _ = oidc
    answer = login_with(app.test_client(), forge(key))
    assert answer["result"] == "FAIL" and answer["error"] == "BADTOKEN"


def test_the_request_line_says_why_an_id_token_was_refused(make_app, oidc, capsys):
    _, key, _ = oidc
    oidc_config = {"auth.method": "oidc", "auth.oidc.issuer": ISSUER, "auth.oidc.audience": [CLIENT_ID]}
    app = make_app(**oidc_config, **{"logging.requests": True})
    client = app.test_client()
    for token, why in [
        ("not.a.jwt", "not a JWT"),
        (id_token(key, "unknown-kid"), "unknown signing key"),
        (id_token(key, "k1", aud="someone-else"), "InvalidAudienceError"),
    ]:
        login_with(client, token)
        assert f"error=BADTOKEN detail={why!r}" in capsys.readouterr().err


def test_nonce_is_checked_when_the_app_sends_one(oidc, mesibo_api):
    app, key, _ = oidc
    mint_ok(mesibo_api)
    client = app.test_client()
    assert login_with(client, id_token(key, "k1", nonce="n-1"), nonce="n-2")["error"] == "BADTOKEN"
    assert login_with(client, id_token(key, "k1"), nonce="n-1")["error"] == "BADTOKEN"
    assert login_with(client, id_token(key, "k1", nonce="n-1"), nonce="n-1")["result"] == "OK"
    import hashlib

    hashed = hashlib.sha256(b"raw-nonce").hexdigest()  # Apple's style
    assert login_with(client, id_token(key, "k1", nonce=hashed), nonce="raw-nonce")["result"] == "OK"


def test_key_rotation_is_picked_up(oidc, mesibo_api, clock):
    app, key, jwks = oidc
    mint_ok(mesibo_api)
    client = app.test_client()
    assert login_with(client, id_token(key, "k1"))["result"] == "OK"
    rotated = new_key()
    mesibo_api.replace(responses.GET, JWKS_URL, json={"keys": [jwk_of(key, "k1"), jwk_of(rotated, "k2")]})
    clock.advance(61)  # unknown key ids make us look again, at most once a minute
    assert login_with(client, id_token(rotated, "k2"))["result"] == "OK"
    assert login_with(client, id_token(key, "k1"))["result"] == "OK"


def test_keys_are_cached_between_logins(oidc, mesibo_api):
    app, key, jwks = oidc
    mint_ok(mesibo_api)
    client = app.test_client()
    for _ in range(3):
        assert login_with(client, id_token(key, "k1"))["result"] == "OK"
    assert jwks.call_count == 1


def test_made_up_key_ids_do_not_make_us_hammer_the_provider(oidc, mesibo_api):
    app, key, jwks = oidc
    client = app.test_client()
    for i in range(5):
        login_with(client, id_token(key, f"made-up-{i}"))
    assert jwks.call_count == 1


def test_email_claim_as_address_requires_a_verified_email(make_app, mesibo_api):
    key = new_key()
    mesibo_api.get(JWKS_URL, json={"keys": [jwk_of(key, "k1")]})
    mint_ok(mesibo_api)
    app = make_app(
        **{
            "auth.method": "oidc",
            "auth.oidc.issuer": ISSUER,
            "auth.oidc.audience": [CLIENT_ID],
            "auth.oidc.jwks_url": JWKS_URL,
            "auth.oidc.address_claim": "email",
            "auth.oidc.address_prefix": "g:",
        }
    )
    client = app.test_client()
    assert login_with(client, id_token(key, "k1", email_verified=False))["error"] == "BADTOKEN"
    assert login_with(client, id_token(key, "k1"))["phone"] == "g:ann@example.org"


def test_oidc_needs_issuer_and_audience(make_app):
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="auth.oidc.issuer"):
        make_app(**{"auth.method": "oidc"})


# -- a custom method ----------------------------------------------------------


def test_the_own_method_example_answers_as_the_built_in_logins_do(make_app, mesibo_api, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "examples"))
    from user_table_login import add_user

    users = tmp_path / "users.db"
    add_user(str(users), "ann", "correct horse battery", "ann-address", "Ann")
    mint_ok(mesibo_api, "pw-tok")
    app = make_app(
        **{
            "auth.method": "user_table_login:UserTableLogin",
            "auth.user_table.database": str(users),
            "limits.failures_per_phone_per_ip_per_day": 3,
        }
    )
    client = app.test_client()
    ok = post(client, {"op": "login", "appid": APPID, "user": "Ann", "password": "correct horse battery"})
    assert ok["token"] == "pw-tok" and ok["phone"] == "ann-address"
    for attempt in ({"user": "ann", "password": "wrong"}, {"user": "bob", "password": "x"}, {"user": "ann"}):
        assert post(client, {"op": "login", "appid": APPID, **attempt})["error"] == "BADLOGIN"
    post(client, {"op": "login", "appid": APPID, "user": "ann", "password": "wrong again"})
    post(client, {"op": "login", "appid": APPID, "user": "ann", "password": "and again"})
    refused = post(client, {"op": "login", "appid": APPID, "user": "ann", "password": "correct horse battery"})
    assert refused["error"] == "RATELIMIT"  # the base's lock-out: 3 wrong answers from this address
    events = [event.event for event in services_of(app).store.events(limit=20)]
    assert "proved" in events and "wrong" in events  # the base's audit notes
    (tmp_path / "gone").mkdir()
    broken = make_app(
        **{
            "auth.method": "user_table_login:UserTableLogin",
            "auth.user_table.database": str(tmp_path / "gone" / "missing.db"),
        }
    )
    assert post(broken.test_client(), {"op": "login", "appid": APPID, "user": "ann", "password": "x"})["error"] == (
        "INTERNAL"
    )


def test_a_method_that_is_no_login_subclass_stops_start_up(make_app):
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="must subclass app.auth.OneStepLogin or app.auth.TwoStepLogin"):
        make_app(**{"auth.method": "collections:OrderedDict"})


def test_unknown_auth_method_stops_start_up(make_app):
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="auth.method"):
        make_app(**{"auth.method": "magic"})
