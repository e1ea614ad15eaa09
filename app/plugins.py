"""Senders and login methods by name: the built-in ones, and ``module:Class`` for your own.

A plug-in class may declare its own configuration section with two class attributes:
``section`` (``"sender.twilio"``; it must sit under ``sender.`` or ``auth.``) and ``Settings``
(a frozen dataclass of ``app.schema.setting`` fields). The loader reads and checks that
section and hands the plug-in its settings object when it is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from .schema import ConfigError

SENDERS = {
    "log": "app.senders.log:LogSender",
    "memory": "app.senders.memory:MemorySender",
    "twilio": "app.senders.twilio:TwilioSender",
    "vonage": "app.senders.vonage:VonageSender",
    "webhook": "app.senders.webhook:WebhookSender",
    "smtp": "app.senders.smtp:SmtpSender",
}

METHODS = {
    "phone": "app.auth.phone:PhoneLogin",
    "email": "app.auth.email:EmailLogin",
    "oidc": "app.auth.oidc:OidcLogin",
    "mesibo_otp": "app.auth.mesibo_otp:MesiboCodeLogin",
    "ldap": "app.auth.ldap:LdapLogin",
    "radius": "app.auth.radius:RadiusLogin",
    "sql": "app.auth.sql:SqlLogin",
    "kerberos": "app.auth.kerberos:KerberosLogin",
    "saml": "app.auth.saml:SamlLogin",
}

# The built-in sections of plug-ins, known whichever plug-in is chosen (a typo in one is an error).
BUILT_IN_SECTIONS = {
    "sender.twilio": SENDERS["twilio"],
    "sender.vonage": SENDERS["vonage"],
    "sender.webhook": SENDERS["webhook"],
    "sender.smtp": SENDERS["smtp"],
    "auth.email": METHODS["email"],
    "auth.oidc": METHODS["oidc"],
    "auth.mesibo_otp": METHODS["mesibo_otp"],
    "auth.ldap": METHODS["ldap"],
    "auth.radius": METHODS["radius"],
    "auth.sql": METHODS["sql"],
    "auth.kerberos": METHODS["kerberos"],
    "auth.saml": METHODS["saml"],
}


def load_object(spec: str, key: str) -> Any:
    """Import ``module:Name``; a wrong spec stops start-up naming ``key``."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(key, f"expected a known name or module:Class, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(key, f"cannot load {spec!r}: {exc}") from None


def sender_class(name: str) -> type:
    return load_object(SENDERS.get(name, name), "sender.name")


def method_class(name: str) -> type:
    return load_object(METHODS.get(name, name), "auth.method")


def section_of(cls: type) -> tuple[str, type] | None:
    """(section name, settings dataclass) a plug-in class declares, or None."""
    section, settings = getattr(cls, "section", None), getattr(cls, "Settings", None)
    if section is None or settings is None:
        return None
    if not str(section).startswith(("sender.", "auth.")):
        raise ConfigError(section, f"a plug-in's section must be under sender. or auth. ({cls.__name__})")
    return str(section), settings
