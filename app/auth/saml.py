"""SAML 2.0, SP-initiated, with a one-time hand-off to the app (PKCE-style).

Step 1 - ``{"op": "login", "appid": ..., "challenge": <base64url SHA-256 of a verifier>}`` - answers
``url``: the identity provider's sign-in page, with this service's AuthnRequest, for the app to
open in a browser tab. The provider posts its signed response to ``POST /saml/acs`` (app.receipts'
sibling in app.samlweb), where pysaml2 checks it - the IdP's signature (its metadata), the
audience, the recipient, the validity window, ``InResponseTo`` (an AuthnRequest this service made
and has not seen answered: single use) - and the browser is sent to ``auth.saml.return_url`` with
a one-time code. Step 2 - ``{"op": "login", "appid": ..., "saml_code": ..., "verifier": ...}`` -
exchanges that code, once and within ``handoff_seconds``, for the mesibo token; only the app that
made the challenge holds the verifier. The address is an attribute of the assertion (or its NameID).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from ..forks import PerProcess
from ..schema import ConfigError, between, setting, url
from ..store import CodeRecord
from ..store.audit import EventName
from . import Identity, LoginKit, LoginRequest, TwoStepLogin
from .password import requires

REQUEST, HANDOFF = "saml-request:", "saml-handoff:"


@dataclass(frozen=True)
class SamlSettings:
    """SAML 2.0 (``[auth.saml]``), with ``auth.method = "saml"``."""

    idp_metadata: str = setting(
        "", "The identity provider's metadata (an XML file): its sign-in URL and signing certificate. Required."
    )
    sp_entity_id: str = setting(
        "",
        "This service's entity id, as registered at the identity provider (e.g. "
        "https://chat.example/saml/metadata). Required.",
    )
    acs_url: str = setting(
        "",
        "This service's public URL of POST /saml/acs (e.g. https://chat.example/saml/acs). Required.",
        check=lambda v: url(v) if v else None,
    )
    return_url: str = setting(
        "",
        "Where the browser goes with the one-time code (a deep link such as "
        "com.example.chat://saml; ?code=... is added). Required.",
    )
    address_attribute: str = setting("uid", "The assertion attribute that is the mesibo address ('': the NameID).")
    name_attribute: str = setting("displayName", "The assertion attribute that is the display name ('': none).")
    request_seconds: int = setting(
        600, "How long a sign-in at the identity provider may take.", check=between(60, 3600)
    )
    handoff_seconds: int = setting(120, "How long the one-time code waits for the app.", check=between(10, 600))

    def validate(self) -> None:
        for name in ("idp_metadata", "sp_entity_id", "acs_url", "return_url"):
            if not getattr(self, name):
                raise ConfigError(f"auth.saml.{name}", "is required by auth.method = 'saml'")
        if not os.path.isfile(self.idp_metadata) or not os.access(self.idp_metadata, os.R_OK):
            raise ConfigError("auth.saml.idp_metadata", f"{self.idp_metadata!r} is not a file the service can read")


def s256(verifier: str) -> str:
    """The challenge of a verifier, as PKCE makes it: base64url of SHA-256, no padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


class SamlLogin(TwoStepLogin):
    section = "auth.saml"
    Settings = SamlSettings
    proof_field = "saml_code"

    def __init__(self, options: SamlSettings, kit: LoginKit):
        super().__init__(options, kit)
        self.saml2 = requires("saml2.client", "saml", "saml")
        self._client = PerProcess(self._make_client)

    def _make_client(self) -> Any:
        from saml2 import BINDING_HTTP_POST
        from saml2.config import SPConfig

        config = SPConfig()
        config.load(
            {
                "entityid": self.options.sp_entity_id,
                "service": {
                    "sp": {
                        "endpoints": {"assertion_consumer_service": [(self.options.acs_url, BINDING_HTTP_POST)]},
                        "want_assertions_signed": True,
                        "want_response_signed": False,
                        "allow_unsolicited": False,
                        "authn_requests_signed": False,
                    }
                },
                "metadata": {"local": [self.options.idp_metadata]},
            }
        )
        return self.saml2.Saml2Client(config=config)

    def subject_of(self, typed: str, now: int) -> str | None:
        return typed.strip() or None

    def metadata(self) -> str:
        """This service's SAML metadata, for the identity provider (GET /saml/metadata)."""
        from saml2.metadata import entity_descriptor

        return str(entity_descriptor(self._client.get().config))

    # -- step 1: the AuthnRequest ------------------------------------------------------------------

    def begin(self, request: LoginRequest) -> dict[str, Any]:
        from saml2 import BINDING_HTTP_REDIRECT

        kit = self.kit
        challenge = request.fields.text("challenge", error="BADTOKEN")
        if not 43 <= len(challenge) <= 128 or not challenge.replace("-", "").replace("_", "").isalnum():
            raise ApiError("BADTOKEN", detail="challenge: base64url of the SHA-256 of a verifier")
        kit.store.hit([kit.limits.per_address(request.client_ip)], request.now)
        request_id, info = self._client.get().prepare_for_authenticate(binding=BINDING_HTTP_REDIRECT)
        record = CodeRecord(REQUEST + request_id, request.scope, challenge, request.now + self.options.request_seconds)
        kit.store.issue(record, [], request.now)
        request.audit.note(EventName.ASKED, "saml")
        return {"url": dict(info["headers"])["Location"]}

    # -- the identity provider's answer (POST /saml/acs) ---------------------------------------------

    def assertion(self, saml_response: str, now: int) -> str:
        """Check the provider's response to one of this service's requests (which it then forgets:
        single use); return the one-time code for the app. PermissionError when it is not good."""
        from saml2 import BINDING_HTTP_POST

        request_id = self._request_of(saml_response)
        if not request_id:
            raise PermissionError("the response answers no request of this service, or one answered already")
        try:
            answer = self._client.get().parse_authn_request_response(
                saml_response, BINDING_HTTP_POST, outstanding={request_id: "/"}
            )
        except Exception as exc:  # pysaml2 raises many kinds: all mean "not a good response"
            raise PermissionError(f"the response does not hold ({type(exc).__name__}: {str(exc)[:160]})") from None
        if answer is None:
            raise PermissionError("the response does not hold")
        if not self._addressed_to_us(answer):  # pysaml2 leaves these to the caller without a conversation
            raise PermissionError("the response is for another recipient")
        # only a good response takes its request (a forged one cannot spend the user's sign-in), once
        taken = self.kit.store.take_code(REQUEST + request_id, now)
        if taken is None:
            raise PermissionError("the response answers no request of this service, or one answered already")
        scope, challenge = taken
        attributes = answer.ava or {}
        name_id = answer.name_id.text if answer.name_id is not None else ""
        address = first(attributes, self.options.address_attribute) if self.options.address_attribute else name_id
        if not address:
            raise PermissionError(f"the assertion has no {self.options.address_attribute!r}")
        name = first(attributes, self.options.name_attribute) if self.options.name_attribute else ""
        code = secrets.token_urlsafe(32)
        handoff = CodeRecord(
            HANDOFF + self._hash(code), scope, f"{challenge}\n{address}\n{name}", now + self.options.handoff_seconds
        )
        self.kit.store.issue(handoff, [], now)
        return code

    def _addressed_to_us(self, answer: Any) -> bool:
        """The response's Destination and every bearer confirmation's Recipient are this service's
        ACS URL (SAML 2.0 profiles, 4.1.4.3 and 4.1.4.2)."""
        acs = self.options.acs_url
        if answer.response.destination and answer.response.destination != acs:
            return False
        recipients = [
            confirmation.subject_confirmation_data.recipient
            for assertion in answer.response.assertion or []
            for confirmation in (assertion.subject.subject_confirmation if assertion.subject else [])
            if confirmation.subject_confirmation_data is not None
        ]
        return bool(recipients) and all(recipient == acs for recipient in recipients)

    @staticmethod
    def _request_of(saml_response: str) -> str:
        """The InResponseTo of a response, read before it is checked (to find the request it answers)."""
        import re

        try:
            xml = base64.b64decode(saml_response, validate=True)[:200_000].decode("utf-8", "replace")
        except ValueError:
            return ""
        found = re.search(r'InResponseTo="([A-Za-z0-9_.:-]{1,128})"', xml)
        return found.group(1) if found else ""

    def _hash(self, code: str) -> str:
        return self.kit.codes.blind("saml-handoff\x1f" + code)

    # -- step 2: the hand-off ---------------------------------------------------------------------

    def prove(self, request: LoginRequest) -> Identity:
        kit = self.kit
        code = request.fields.text("saml_code", error="BADTOKEN")
        verifier = request.fields.text("verifier", error="BADTOKEN")
        kit.store.hit([kit.limits.per_address(request.client_ip)], request.now)
        taken = kit.store.take_code(HANDOFF + self._hash(code), request.now, request.scope) if code else None
        if taken is None:
            request.audit.note(EventName.WRONG, "saml code")
            raise ApiError("BADTOKEN", detail="the code is unknown, used or expired")
        challenge, address, name = taken[1].split("\n", 2)
        if not verifier or not hmac.compare_digest(s256(verifier), challenge):
            request.audit.note(EventName.WRONG, "saml verifier")
            raise ApiError("BADTOKEN", detail="the verifier does not match the challenge")
        request.audit.address = address
        request.audit.note(EventName.PROVED, "saml")
        return Identity(address, name[:128])


def first(attributes: dict[str, Any], name: str) -> str:
    values = attributes.get(name) or []
    return str(values[0]).strip() if values else ""
