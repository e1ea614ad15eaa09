"""The service's own configuration sections as typed, frozen objects (``settings.otp.digits``): each
field's default, meaning and allowed values; ``app.config`` reads them. A sender's or login method's
own section (``[sender.twilio]``, ``[auth.oidc]``) is declared next to its code."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .attestation import AttestationSettings
from .audit import AuditSettings
from .codes import OtpSettings
from .cors import origins_problem
from .limit_settings import LimitSettings
from .logs import LoggingSettings
from .messages import MessageSettings
from .metrics import MetricsSettings
from .phones import PhoneSettings
from .schema import ConfigError, between, one_of, setting, url
from .schema import template as template_problem
from .senders.router import channels_problem, routes_problem
from .store import DatabaseSettings


def _apps(value: dict) -> str | None:
    for appid, spec in value.items():
        if not isinstance(spec, dict) or set(spec) - {"app_token", "api_url"} or not spec:
            return f"{appid!r}: a table of app_token and/or api_url"
        if not all(isinstance(v, str) for v in spec.values()) or url(spec.get("api_url") or "https://x"):
            return f"{appid!r}: app_token and api_url are strings, api_url an http(s) URL"
    return _appids(list(value))


def _appids(value: list) -> str | None:
    wrong = [appid for appid in value if not isinstance(appid, str) or not appid.strip() or not appid.isprintable()]
    return f"{wrong} are not app ids" if wrong else None


@dataclasses.dataclass(frozen=True)
class MesiboSettings:
    """mesibo's backend API."""

    app_token: str = setting(
        "", "mesibo app token (console > App Settings). Secret.", env=["MESIBO_APP_TOKEN"], secret=True
    )
    api_url: str = setting(
        "https://api.mesibo.com/backend/",
        "mesibo backend API URL (change it for on-premise).",
        env=["MESIBO_API_URL"],
        check=url,
    )
    api_style: str = setting(
        "backend",
        "'backend' (JSON POST, default) or 'legacy' (GET api.php with the token in the URL).",
        check=one_of("backend", "legacy"),
    )
    token_expiry_minutes: int = setting(
        525600, "Lifetime of minted user tokens, in minutes.", check=between(1, 52560000)
    )
    token_v2: bool = setting(True, "Ask mesibo for v2 user tokens (user.token.v2, as mesibo's own sample does).")
    connect_timeout: float = setting(3.0, "Seconds to wait for a connection to mesibo.", check=between(0.1, 60))
    read_timeout: float = setting(10.0, "Seconds to wait for mesibo's answer.", check=between(0.1, 120))
    max_answer_bytes: int = setting(
        65536,
        "Largest answer read from mesibo; a larger one is refused (BADAPP) without reading the rest.",
        check=between(1024, 16 << 20),
    )
    ca_file: str = setting(
        "",
        "CA bundle that signs an on-premise mesibo's certificate (empty: REQUESTS_CA_BUNDLE "
        "if set, else the usual trusted CAs).",
    )
    apps: dict[str, Any] = setting(
        {},
        "App ids with their own mesibo app (staging, another product): app id -> "
        '{app_token = "...", api_url = "..."} (either may be left out: the keys '
        "above serve). Secret.",
        secret=True,
        check=_apps,
    )
    revoke_on_logout: bool = setting(
        True,
        "On logout, ask mesibo to remove the user's tokens for that app (best "
        "effort; the answer is OK either way). The service keeps a row per token it "
        "minted, readable only with the token (see README).",
    )
    revoke_op: str = setting(
        "userset",
        "The mesibo API op that removes a user's tokens, sent as mesibo's PHP helper "
        'sends it: {"op": "userset", "user": {"address": ..., "token": '
        '{"remove": true, "appid": ...}}}.',
    )
    delete_op: str = setting(
        "userdel",
        "The mesibo API op that deletes a user (deleteaccount; mesibo's own PHP "
        'helper sends it as {"op": "userdel", "user": {"address": ...}}).',
    )


@dataclasses.dataclass(frozen=True)
class SenderSettings:
    """Delivery of codes; the chosen sender's own keys are in its section (``[sender.twilio]``)."""

    name: str = setting(
        "log", "Which sender delivers codes: log, memory, twilio, vonage, webhook, smtp, or module:Class."
    )
    channels: list[str] = setting(
        ["sms"],
        "The channels the apps may ask for in step 1 (field 'channel'): sms, "
        "whatsapp, voice; the first is the default.",
        check=channels_problem,
    )
    routes: dict[str, Any] = setting(
        {},
        'Channel -> the senders to try in order (e.g. {sms = ["twilio", '
        '"vonage"], voice = ["twilio"]}); the next after a definite refusal only. '
        "A channel not listed: sender.name.",
        check=routes_problem,
    )
    app_name: str = setting("Mesibo Messenger", "The app name used in the message text.")
    template: str = setting(
        "{code} is your {app_name} verification code. It expires in {minutes} minutes.",
        "The message text; fields: {code}, {app_name}, {minutes}.",
        check=template_problem,
    )
    delete_template: str = setting(
        "{code} is your code to delete your {app_name} account. It expires in {minutes} "
        "minutes. If you did not ask for it, ignore this message.",
        "The text of a code that deletes the account (deleteaccount); the same fields.",
        check=template_problem,
    )
    sms_retriever_hash: str = setting(
        "", "Android SMS Retriever app hash (11 characters); when set it is added as the last line."
    )
    timeout: float = setting(
        10.0,
        "Seconds to wait for an SMS provider's or webhook's answer (after at "
        "most 3 s to connect), or for the whole SMTP exchange; name resolution included.",
        check=between(0.5, 60),
    )
    ca_file: str = setting(
        "",
        "CA bundle that signs an SMS gateway's or webhook's certificate (empty: "
        "REQUESTS_CA_BUNDLE if set, else the usual trusted CAs).",
    )


@dataclasses.dataclass(frozen=True)
class AuthSettings:
    """How users prove who they are; the chosen method's own keys are in its section (``[auth.oidc]``)."""

    method: str = setting(
        "phone", "phone, email, oidc, mesibo_otp, ldap, radius, sql, kerberos, saml, or module:Class."
    )


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """The endpoint."""

    appids: list[str] = setting(
        [],
        "The app ids this deployment serves (an Android package, an iOS bundle id, a "
        "staging app); any other is answered BADAPPID before any work. Empty: any (a "
        "warning at start-up).",
        check=_appids,
    )
    max_body_bytes: int = setting(65536, "Largest request body accepted.", check=between(256, 16777216))
    request_deadline_seconds: float = setting(
        29.0,
        "Every wait of a request fits in this: keep it below the proxy's read timeout (the shipped nginx: 30 s). "
        "Checked at start-up against the store's and mesibo's timeouts.",
        check=between(1, 600),
    )
    cors_origins: list[str] = setting(
        ["*"],
        'Origins a browser page may call from (e.g. ["https://web.example"]), '
        "reflected with Vary: Origin; a request from a page elsewhere is answered "
        'BADORIGIN before any work; ["*"]: any.',
        check=origins_problem,
    )
    cors_max_age: int = setting(600, "Seconds a browser may keep a preflight's answer.", check=between(0, 86400))
    redirect_url: str = setting("https://mesibo.com", "Where GET / sends a browser (302).", check=url)
    trusted_proxies: int = setting(
        0,
        "How many proxies in front of the service set X-Forwarded-For (0: use the socket address).",
        check=between(0, 5),
    )
    development: str = setting(
        "auto",
        "Development mode (true/false/auto): allows an empty app token and a "
        "generated code-hashing key. auto: on only when nothing is configured (no config "
        "file, no app token).",
        check=one_of("auto", "true", "false"),
    )
    error_message_text: bool = setting(False, "Add a human-readable 'message_text' to failures (the apps ignore it).")


@dataclasses.dataclass(frozen=True)
class LoginSettings:
    """The optional notice after step 1 (the PHP sent title, message and delay)."""

    notice: bool = setting(False, "Send title, message and delay with a successful step 1.")
    notice_title: str = setting("Verify your number", "Title of that notice.")
    notice_message: str = setting("Enter the verification code we sent you.", "Text of that notice.")
    notice_delay: int = setting(0, "The notice's delay field, in seconds.", check=between(0, 3600))


@dataclasses.dataclass(frozen=True)
class AppSettings:
    """What a successful login hands to the app."""

    upload_url: str = setting("https://s3.mesibo.com/api.php", "urls.upload")
    download_url: str = setting("https://appimages.mesibo.com/", "urls.download")
    fileurl: str = setting("https://appimages.mesibo.com/", "fileurl")
    downloadurl: str = setting("https://media.mesibo.com/files/", "downloadurl")
    uploadurl: str = setting("https://app.mesibo.com/api.php", "uploadurl")
    uiconfig: str = setting("https://app.mesibo.com/api.php", "uiconfig")
    invite_text: str = setting(
        "Hey, I use Mesibo for free messaging, voice and video calls. Download it from https://m.mesibo.com",
        "invite and share.text",
    )
    invite_subject: str = setting("Mesibo Messenger: Open Source Messenger", "share.subject")
    invite_title: str = setting("Invite a friend via", "share.title")


# The sections in the order config.example.toml and the README list them.
SECTIONS: dict[str, type] = {
    "mesibo": MesiboSettings,
    "database": DatabaseSettings,
    "otp": OtpSettings,
    "sender": SenderSettings,
    "auth": AuthSettings,
    "server": ServerSettings,
    "login": LoginSettings,
    "app": AppSettings,
    "limits": LimitSettings,
    "attestation": AttestationSettings,
    "messages": MessageSettings,
    "phones": PhoneSettings,
    "audit": AuditSettings,
    "metrics": MetricsSettings,
    "logging": LoggingSettings,
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The whole configuration, checked: every section, the plug-ins' and the start-up gate's verdicts."""

    mesibo: MesiboSettings
    database: DatabaseSettings
    otp: OtpSettings
    sender: SenderSettings
    auth: AuthSettings
    server: ServerSettings
    login: LoginSettings
    app: AppSettings
    limits: LimitSettings
    attestation: AttestationSettings
    messages: MessageSettings
    phones: PhoneSettings
    audit: AuditSettings
    metrics: MetricsSettings
    logging: LoggingSettings
    # section name ("sender.twilio") -> that plug-in's settings object
    plugins: Mapping[str, Any]
    development: bool
    database_url: str
    sender_class: type
    method_class: type
    # sender name -> class, for every sender a route names besides sender.name's
    route_classes: Mapping[str, type] = dataclasses.field(default_factory=dict)

    def plugin(self, section: str | None) -> Any:
        """A plug-in's own settings (None when it declares none)."""
        if section is None:
            return None
        try:
            return self.plugins[section]
        except KeyError:
            raise ConfigError(section, "is not a known section") from None

    def secrets(self) -> list[str]:
        """Every secret value, for the log redactor."""
        from .schema import keys_of

        found = []
        for name, section in [*((name, getattr(self, name)) for name in SECTIONS), *self.plugins.items()]:
            for key in keys_of(name, type(section)):
                value = getattr(section, key.attr)
                if key.secret and isinstance(value, str) and "://" in value:  # a URL's secret is its password
                    found += [password] if len(password := urlsplit(value).password or "") >= 6 else []
                elif key.secret and isinstance(value, str) and len(value) >= 6:
                    found.append(value)
                elif key.secret and isinstance(value, dict):  # mesibo.apps: each app's own token
                    found += [v["app_token"] for v in value.values() if len(v.get("app_token") or "") >= 6]
        return found
