"""Kerberos (SPNEGO / Negotiate): a ticket the user's enrolled device already holds logs them in.

The client sends a GSS-API token - in ``Authorization: Negotiate <base64>``, as HTTP clients on
enrolled devices do (the API layer hands the header to this login as the field ``negotiate``), or
in that body field. It is accepted with the service's keytab (MIT krb5 through ``gssapi``: the
ticket's service, its validity window and the replay cache are checked there); the client's
realm must be one of ``auth.kerberos.realms``, and ``auth.kerberos.address`` maps the principal to
the mesibo address. A request without a token is answered 401 with ``WWW-Authenticate: Negotiate``
(and the envelope), which is what makes such clients send one; when the client asked for mutual
authentication the answer carries the service's token back (``negotiate``, and the header).
"""

from __future__ import annotations

import base64
import binascii
import logging
import string
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from ..forks import PerProcess
from ..schema import ConfigError, setting
from ..store.audit import EventName
from . import Identity, LoginKit, LoginRequest, OneStepLogin
from .password import requires

logger = logging.getLogger("app.auth.kerberos")


def _address_template(value: str) -> str | None:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        return f"is not a template ({exc})"
    unknown = fields - {"user", "realm", "principal"}
    return f"knows only {{user}}, {{realm}} and {{principal}}, not {sorted(unknown)}" if unknown or not fields else None


@dataclass(frozen=True)
class KerberosSettings:
    """Kerberos / SPNEGO (``[auth.kerberos]``), with ``auth.method = "kerberos"``."""

    keytab: str = setting("", "The service's keytab file (empty: KRB5_KTNAME, else the system's).")
    service: str = setting(
        "",
        "The service principal tickets must be for, e.g. HTTP/chat.example@CORP.EXAMPLE "
        "(empty: any principal in the keytab).",
    )
    realms: list[str] = setting([], 'The client realms allowed to log in (e.g. ["CORP.EXAMPLE"]); required.')
    address: str = setting(
        "{user}",
        "The mesibo address of a principal: {user} (before the @), {realm}, {principal}.",
        check=_address_template,
    )

    def validate(self) -> None:
        if not self.realms:
            raise ConfigError("auth.kerberos.realms", "name the client realms allowed to log in")


class KerberosLogin(OneStepLogin):
    section = "auth.kerberos"
    Settings = KerberosSettings
    refusal = "BADTOKEN"

    def __init__(self, options: KerberosSettings, kit: LoginKit):
        super().__init__(options, kit)
        self.gssapi = requires("gssapi", "kerberos", "kerberos")
        self.refused = requires("gssapi.exceptions", "kerberos", "kerberos").GSSError
        self._creds = PerProcess(self._acceptor)

    def _acceptor(self) -> Any:
        """The service's credentials, from its keytab (once per process)."""
        gssapi, options = self.gssapi, self.options
        name = gssapi.Name(options.service, gssapi.NameType.kerberos_principal) if options.service else None
        store = {"keytab": options.keytab} if options.keytab else None
        return gssapi.Credentials(name=name, usage="accept", store=store)

    def subject_of(self, typed: str, now: int) -> str | None:
        return typed.strip() or None

    def prove(self, request: LoginRequest) -> Identity:
        kit, gssapi = self.kit, self.gssapi
        raw = request.fields.text("negotiate", error="BADTOKEN")
        if not raw:  # the challenge that makes a Negotiate client send its token: not a check to count
            raise ApiError(
                "BADTOKEN", detail="no Negotiate token", http_status=401, headers={"WWW-Authenticate": "Negotiate"}
            )
        kit.store.hit([kit.limits.per_address(request.client_ip)], request.now)
        try:
            creds = self._creds.get()
        except self.refused as exc:  # the service's own keys, not the user's ticket: the operator's to fix
            logger.error("cannot use the service's Kerberos keys: %s", exc)
            raise ApiError("INTERNAL", detail="the service's keytab cannot be used") from None
        try:
            token = base64.b64decode(raw, validate=True)
            context = gssapi.SecurityContext(creds=creds, usage="accept")
            answer = context.step(token)
            # gssapi keeps an acceptor's failure and raises it at the context's next use
            complete, principal = context.complete, str(context.initiator_name) if context.complete else ""
        except (binascii.Error, ValueError, self.refused) as exc:
            request.audit.note(EventName.WRONG, "kerberos")
            raise ApiError("BADTOKEN", detail=f"ticket refused ({type(exc).__name__}: {str(exc)[:120]})") from None
        if not complete:
            raise ApiError("BADTOKEN", detail="a Negotiate exchange of more than one step is not supported")
        user, _, realm = principal.rpartition("@")
        request.audit.address = principal
        if realm not in self.options.realms:
            request.audit.note(EventName.WRONG, f"realm {realm[:64]} not allowed")
            raise ApiError("BADTOKEN", detail=f"realm {realm[:64]!r} is not allowed")
        request.audit.note(EventName.PROVED, "kerberos")
        if answer:  # the client asked for mutual authentication: the service's token back
            request.extra["negotiate"] = base64.b64encode(answer).decode()
        return Identity(self.options.address.format(user=user, realm=realm, principal=principal), user[:128])
