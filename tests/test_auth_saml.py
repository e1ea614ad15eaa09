"""The SAML login (issue 26, item 2) against a real SAML identity provider the tests run: pysaml2's
own IdP, with keys and certificates the test makes, signing with Debian's xmlsec1 - chosen over
SimpleSAMLphp or LemonLDAP::NG because it runs in the test's process with no PHP or web server, and
lets the test forge each case the service must refuse (another key, audience, recipient, expired). The app's whole
round trip: step 1 answers the IdP's sign-in URL for a PKCE-style challenge, the IdP posts its
signed response to /saml/acs, the browser is sent on with a one-time code, step 2 exchanges it
with the verifier for the mesibo token."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import secrets
import shutil
import urllib.parse

import pytest
from helpers import API_URL, APPID, post, services_of
from responses import matchers

pytestmark = pytest.mark.slow

pytest.importorskip("saml2", reason="pysaml2 is installed with the test extra")
if shutil.which("xmlsec1") is None:
    pytest.skip("xmlsec1 is needed: apt-get install xmlsec1", allow_module_level=True)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT  # noqa: E402
from saml2.config import Config  # noqa: E402
from saml2.metadata import entity_descriptor  # noqa: E402
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID  # noqa: E402
from saml2.server import Server  # noqa: E402

from app.auth.saml import s256  # noqa: E402

SP, ACS, RETURN = "https://chat.example/saml/metadata", "https://chat.example/saml/acs", "com.example.chat://saml"
IDP, SSO = "https://idp.example/metadata", "https://idp.example/sso"
OTHER_SP = "https://other.example/sp"


def keypair(folder, name):
    """The IdP's key and certificate, made once per name (the metadata and the signer must agree)."""
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.crt"
    if key_path.exists():
        return str(key_path), str(cert_path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


def idp_config(folder, name="idp", sp_metadata="", lifetime_minutes=5, other_sp=False):
    key, cert = keypair(folder, name)
    config = {
        "entityid": IDP,
        "service": {
            "idp": {
                "endpoints": {"single_sign_on_service": [(SSO, BINDING_HTTP_REDIRECT)]},
                "policy": {"default": {"lifetime": {"minutes": lifetime_minutes}, "attribute_restrictions": None}},
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
            }
        },
        "key_file": key,
        "cert_file": cert,
    }
    if sp_metadata:  # (other_sp: it also serves another SP whose answers come to the same ACS URL)
        config["metadata"] = {"inline": [sp_metadata, *([sp_metadata.replace(SP, OTHER_SP)] if other_sp else [])]}
    loaded = Config()
    loaded.load(config)
    return loaded


@pytest.fixture(name="saml")
def _saml(tmp_path, make_app, mesibo_api):
    """The service with auth.method = saml, and the IdP that trusts it (from its own metadata)."""
    metadata_path = tmp_path / "idp-metadata.xml"
    metadata_path.write_text(str(entity_descriptor(idp_config(tmp_path))))
    app = make_app(
        **{
            "auth.method": "saml",
            "auth.saml.idp_metadata": str(metadata_path),
            "auth.saml.sp_entity_id": SP,
            "auth.saml.acs_url": ACS,
            "auth.saml.return_url": RETURN,
        }
    )
    client = app.test_client()
    sp_metadata = client.get("/saml/metadata").data.decode()
    assert SP in sp_metadata and ACS in sp_metadata
    idp = Server(config=idp_config(tmp_path, sp_metadata=sp_metadata))
    expected = matchers.json_params_matcher({"op": "useradd", "user": {"address": "ann"}}, strict_match=False)
    minted = mesibo_api.post(API_URL, json={"result": True, "user": {"token": "user-token-saml"}}, match=[expected])
    return app, client, idp, minted


def sign_in(client, idp, *, audience=SP, destination=ACS, signed=True, answering=None):
    """Step 1, then the IdP's signed answer for it: (verifier, SAMLResponse)."""
    verifier = secrets.token_urlsafe(48)
    answer = post(client, {"op": "login", "appid": APPID, "challenge": s256(verifier)})
    assert answer["result"] == "OK" and answer["url"].startswith(SSO + "?SAMLRequest=")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer["url"]).query))
    authn = idp.parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
    response = idp.create_authn_response(
        identity={"uid": ["ann"], "displayName": ["Ann Example"]},
        in_response_to=answering or authn.message.id,
        destination=destination,
        sp_entity_id=audience,
        name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text="ann-123"),
        sign_assertion=signed,
        sign_response=signed,
        authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password", "authn_auth": IDP},
    )
    form = idp.apply_binding(BINDING_HTTP_POST, str(response), destination, response=True)["data"]
    return verifier, re.search(r'name="SAMLResponse" value="([^"]+)"', form).group(1)


def acs(client, saml_response):
    return client.post("/saml/acs", data={"SAMLResponse": saml_response})


def test_the_whole_round_trip_mints_for_the_asserted_user(saml):
    app, client, idp, minted = saml
    verifier, saml_response = sign_in(client, idp)
    landed = acs(client, saml_response)
    assert landed.status_code == 303 and landed.headers["Location"].startswith(RETURN + "?code=")
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(landed.headers["Location"]).query)["code"][0]
    answer = post(client, {"op": "login", "appid": APPID, "saml_code": code, "verifier": verifier})
    assert answer["result"] == "OK" and answer["token"] == "user-token-saml" and answer["phone"] == "ann"
    assert minted.call_count == 1
    # the code and the response are single use
    assert post(client, {"op": "login", "appid": APPID, "saml_code": code, "verifier": verifier})["error"] == "BADTOKEN"
    assert acs(client, saml_response).status_code == 403  # a replay answers a request already answered


def test_a_forged_response_cannot_spend_the_users_sign_in(saml, tmp_path):
    """A response signed by someone else, answering the user's pending request, is refused without
    using that request up: the identity provider's real answer still works."""
    app, client, idp, minted = saml
    verifier, genuine = sign_in(client, idp)
    request_id = re.search(r'InResponseTo="([^"]+)"', base64.b64decode(genuine).decode()).group(1)
    rogue = Server(config=idp_config(tmp_path, name="rogue", sp_metadata=client.get("/saml/metadata").data.decode()))
    _, forged = sign_in(client, rogue, answering=request_id)
    assert acs(client, forged).status_code == 403
    assert acs(client, genuine).status_code == 303


def test_only_the_app_that_made_the_challenge_can_use_the_code(saml):
    app, client, idp, minted = saml
    verifier, saml_response = sign_in(client, idp)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(acs(client, saml_response).headers["Location"]).query)["code"][0]
    stolen = post(client, {"op": "login", "appid": APPID, "saml_code": code, "verifier": "someone-elses-verifier"})
    assert stolen["error"] == "BADTOKEN" and minted.call_count == 0
    # a code taken with a wrong verifier is spent: the thief's try costs the code, never yields a token
    assert post(client, {"op": "login", "appid": APPID, "saml_code": code, "verifier": verifier})["error"] == "BADTOKEN"


@pytest.mark.parametrize(
    "forgery",
    ["unsigned", "another idp key", "another audience", "another recipient", "expired", "unsolicited", "garbage"],
)
def test_a_response_that_does_not_hold_is_refused(saml, tmp_path, forgery):
    app, client, idp, minted = saml
    if forgery == "another idp key":  # an IdP with the same entity id but a key the service does not trust
        sp_metadata = client.get("/saml/metadata").data.decode()
        idp = Server(config=idp_config(tmp_path, name="rogue", sp_metadata=sp_metadata))
    if forgery == "another audience":
        sp_metadata = client.get("/saml/metadata").data.decode()
        idp = Server(config=idp_config(tmp_path, sp_metadata=sp_metadata, other_sp=True))
    if forgery == "expired":
        sp_metadata = client.get("/saml/metadata").data.decode()
        idp = Server(config=idp_config(tmp_path, sp_metadata=sp_metadata, lifetime_minutes=-10))
    kwargs = {
        "another audience": {"audience": OTHER_SP},
        "another recipient": {"destination": "https://other.example/acs"},
        "unsigned": {"signed": False},
        "unsolicited": {"answering": "id-this-service-never-made"},
    }.get(forgery, {})
    _, saml_response = sign_in(client, idp, **kwargs)
    if forgery == "garbage":
        saml_response = "not a SAML response"
    landed = acs(client, saml_response)
    assert landed.status_code == 403, landed.data
    assert "Location" not in landed.headers and minted.call_count == 0
    why = {
        "unsigned": "Signature missing",
        "another idp key": "Failed to verify signature",
        "another audience": "AudienceRestrictions",
        "another recipient": "another recipient",
        "expired": "Condition not OK",
        "unsolicited": "answers no request",
        "garbage": "answers no request",
    }[forgery]
    assert why in landed.get_json()["detail"], landed.get_json()


def test_an_unreadable_idp_metadata_file_stops_start_up(make_app, tmp_path):
    from app.schema import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_app(
            **{
                "auth.method": "saml",
                "auth.saml.idp_metadata": str(tmp_path / "missing.xml"),
                "auth.saml.sp_entity_id": SP,
                "auth.saml.acs_url": ACS,
                "auth.saml.return_url": RETURN,
            }
        )
    assert caught.value.key == "auth.saml.idp_metadata"


def test_step_1_needs_a_challenge_and_saml_is_off_for_other_methods(saml, make_app):
    app, client, idp, minted = saml
    assert post(client, {"op": "login", "appid": APPID})["error"] == "BADTOKEN"
    assert post(client, {"op": "login", "appid": APPID, "challenge": "short"})["error"] == "BADTOKEN"
    other = make_app().test_client()
    assert other.post("/saml/acs", data={"SAMLResponse": "x"}).status_code == 404
    assert other.get("/saml/metadata").status_code == 404
    assert services_of(app).settings.auth.method == "saml"


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="chromium is not installed (.ci/run installs it)")
def test_chromium_walks_the_whole_flow_through_the_identity_providers_pages(tmp_path):
    """The service under gunicorn, the IdP as a web server of the test's own, and Debian's Chromium:
    the app's step 1, the browser at the IdP's sign-in URL, the IdP's page posting its signed
    response to /saml/acs by itself, the browser landing on the return URL with the code, step 2."""
    import http.server
    import threading

    import requests
    from helpers import APP_TOKEN, OTP_SECRET, launch_chromium
    from playwright.sync_api import sync_playwright

    from tools.processes import FakeMesibo, Service, free_port

    port, idp_port, landing_port = free_port(), free_port(), free_port()
    base, idp_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{idp_port}"
    sso = f"{idp_base}/sso"
    metadata_path = tmp_path / "idp-metadata.xml"

    def provider(sp_metadata=""):  # the IdP at its own URL
        key, cert = keypair(tmp_path, "idp")
        settings = {
            "entityid": idp_base + "/metadata",
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(sso, BINDING_HTTP_REDIRECT)]},
                    "policy": {"default": {"lifetime": {"minutes": 5}}},
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                }
            },
            "key_file": key,
            "cert_file": cert,
        }
        if sp_metadata:
            settings["metadata"] = {"inline": [sp_metadata]}
        loaded = Config()
        loaded.load(settings)
        return loaded

    metadata_path.write_text(str(entity_descriptor(provider())))
    fake = FakeMesibo(APP_TOKEN)
    service = Service(
        tmp_path,
        {
            "MESIBO_APP_TOKEN": APP_TOKEN,
            "MESIBO_API_URL": fake.url,
            "OTP_SECRET": OTP_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/saml.db",
            "MESSENGER_AUTH_METHOD": "saml",
            "MESSENGER_AUTH_SAML_IDP_METADATA": str(metadata_path),
            "MESSENGER_AUTH_SAML_SP_ENTITY_ID": base + "/saml/metadata",
            "MESSENGER_AUTH_SAML_ACS_URL": base + "/saml/acs",
            "MESSENGER_AUTH_SAML_RETURN_URL": f"http://127.0.0.1:{landing_port}/landed",
        },
        port=port,
    )
    idp = Server(config=provider(requests.get(base + "/saml/metadata", timeout=10).text))

    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path.startswith("/sso"):  # the IdP signs Ann in and posts its answer back
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                authn = idp.parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
                response = idp.create_authn_response(
                    identity={"uid": ["ann"], "displayName": ["Ann Example"]},
                    in_response_to=authn.message.id,
                    destination=base + "/saml/acs",
                    sp_entity_id=base + "/saml/metadata",
                    name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text="ann-123"),
                    sign_assertion=True,
                    sign_response=True,
                    authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password", "authn_auth": sso},
                )
                page = idp.apply_binding(BINDING_HTTP_POST, str(response), base + "/saml/acs", response=True)["data"]
            else:  # the return URL: what the app reads its code from
                page = "<!doctype html><title>landed</title>"
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", p), Pages) for p in (idp_port, landing_port)]
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        verifier = secrets.token_urlsafe(48)
        step1 = requests.post(
            base + "/", json={"op": "login", "appid": APPID, "challenge": s256(verifier)}, timeout=10
        ).json()
        assert step1["result"] == "OK" and step1["url"].startswith(sso), step1
        with sync_playwright() as driver:
            browser = launch_chromium(driver)
            page = browser.new_page()
            page.goto(step1["url"])
            page.wait_for_url(f"http://127.0.0.1:{landing_port}/landed?code=*", timeout=15000)
            landed = page.url
            browser.close()
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(landed).query)["code"][0]
        step2 = requests.post(
            base + "/", json={"op": "login", "appid": APPID, "saml_code": code, "verifier": verifier}, timeout=10
        ).json()
        assert step2["result"] == "OK" and step2["phone"] == "ann", step2
        assert step2["token"] == fake.stats()["tokens"][-1]["token"]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        service.stop()
        fake.stop()
