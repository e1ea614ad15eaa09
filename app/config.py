"""Configuration: defaults, then a TOML file, then environment variables.

Every key has a dotted name (``section.key``) that is its place in the TOML file.
Each key can be set from the environment as ``MESSENGER_<SECTION>_<KEY>`` in upper case
(``otp.digits`` -> ``MESSENGER_OTP_DIGITS``); a few well-known keys also have a short
name (``MESIBO_APP_TOKEN``, ``MESIBO_API_URL``, ``DATABASE_URL``, ``OTP_SECRET``).
Secret keys can instead be read from a file named by ``<ENV NAME>_FILE``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PLACEHOLDERS = frozenset({"", "changeme", "change-me", "your-app-token", "xxx", "secret"})


class ConfigError(Exception):
    """A configuration value is wrong; the message names the key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"configuration key {key!r}: {message}")
        self.key = key


@dataclass(frozen=True)
class Key:
    name: str
    default: Any
    kind: type
    doc: str
    aliases: tuple[str, ...] = ()
    secret: bool = False
    check: Callable[[Any], str | None] | None = None

    @property
    def env(self) -> str:
        return "MESSENGER_" + self.name.replace(".", "_").upper()


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not low <= value <= high:
            return f"must be between {low} and {high}, got {value}"
        return None

    return check


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(choices)}, got {value!r}"
        return None

    return check


def _url(value: str) -> str | None:
    if not value.startswith(("http://", "https://")):
        return f"must be an http:// or https:// URL, got {value!r}"
    return None


def _template(value: str) -> str | None:
    """A message template must render with the fields it is given, or every login would fail later."""
    try:
        value.format(code="123456", app_name="App", minutes=5)
    except (KeyError, IndexError, ValueError) as exc:
        return f"is not a valid template ({type(exc).__name__}: {exc}); use {{code}}, {{app_name}}, {{minutes}}"
    return None


def _database_url(value: str) -> str | None:
    if value and not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return "must start with sqlite:/// or postgresql://"
    return None


def _calling_codes(value: list) -> str | None:
    for item in value:
        if not str(item).isdigit() or len(str(item)) > 3:
            return f"calling codes are 1-3 digits, got {item!r}"
    return None


def _test_numbers(value: dict) -> str | None:
    for phone, entry in value.items():
        if not str(phone).lstrip("+").isdigit():
            return f"{phone!r} is not a phone number of digits"
        code = entry.get("code") if isinstance(entry, dict) else entry
        if not isinstance(code, str) or not code.isdigit():
            return f"the code for {phone!r} must be a string of digits"
        if isinstance(entry, dict) and "until" in entry:
            try:
                _parse_until(entry["until"])
            except ValueError:
                return f"the end date for {phone!r} must be YYYY-MM-DD"
    return None


def _parse_until(value: Any) -> float:
    """An end date (``YYYY-MM-DD`` string or TOML date) as Unix seconds at the end of that day (UTC)."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=value.tzinfo or dt.UTC).timestamp()
    if isinstance(value, dt.date):
        day = value
    else:
        day = dt.date.fromisoformat(str(value))
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() + 86400


KEYS: tuple[Key, ...] = (
    # -- mesibo's backend API
    Key(
        "mesibo.app_token",
        "",
        str,
        "mesibo app token (console > App Settings). Secret.",
        aliases=("MESIBO_APP_TOKEN",),
        secret=True,
    ),
    Key(
        "mesibo.api_url",
        "https://api.mesibo.com/backend/",
        str,
        "mesibo backend API URL (change it for on-premise).",
        aliases=("MESIBO_API_URL",),
        check=_url,
    ),
    Key(
        "mesibo.api_style",
        "backend",
        str,
        "'backend' (JSON POST, default) or 'legacy' (GET api.php with the token in the URL).",
        check=_one_of("backend", "legacy"),
    ),
    Key(
        "mesibo.token_expiry_minutes",
        525600,
        int,
        "Lifetime of minted user tokens, in minutes.",
        check=_between(1, 52560000),
    ),
    Key("mesibo.connect_timeout", 3.0, float, "Seconds to wait for a connection to mesibo.", check=_between(0.1, 60)),
    Key("mesibo.read_timeout", 10.0, float, "Seconds to wait for mesibo's answer.", check=_between(0.1, 120)),
    Key("mesibo.revoke_on_logout", False, bool, "On logout, ask mesibo to delete the user token (best effort)."),
    Key("mesibo.revoke_op", "usertokendel", str, "The mesibo API op used to revoke a user token on logout."),
    # -- storage
    Key(
        "database.url",
        "",
        str,
        "sqlite:///path/to/file.db (default: messenger.db in the instance folder) or postgresql://...",
        aliases=("DATABASE_URL",),
        check=_database_url,
    ),
    Key(
        "database.sqlite_synchronous",
        "NORMAL",
        str,
        "SQLite fsync policy in WAL mode: NORMAL (survives a process crash; a power cut may lose "
        "the last codes issued) or FULL (fsync on every commit).",
        check=_one_of("NORMAL", "FULL"),
    ),
    Key(
        "database.busy_timeout_ms", 5000, int, "How long a writer waits for the SQLite lock.", check=_between(0, 60000)
    ),
    Key("database.pool_size", 10, int, "PostgreSQL connections per worker process.", check=_between(1, 100)),
    Key("database.migrate_on_start", True, bool, "Create or upgrade the schema when the service starts."),
    # -- one-time codes
    Key(
        "otp.secret",
        "",
        str,
        "Key for hashing codes (HMAC-SHA256). Generated and kept next to a SQLite database when empty.",
        aliases=("OTP_SECRET",),
        secret=True,
    ),
    Key("otp.digits", 6, int, "Digits in a code (4-10).", check=_between(4, 10)),
    Key("otp.ttl_seconds", 300, int, "Lifetime of a code, in seconds (at most 10 minutes).", check=_between(30, 600)),
    Key("otp.max_attempts", 5, int, "Wrong answers allowed per code; then the code is dead.", check=_between(1, 10)),
    # -- delivery
    Key("sender.name", "log", str, "Which sender delivers codes: log, memory, or module:Class."),
    Key("sender.app_name", "Mesibo Messenger", str, "The app name used in the message text."),
    Key(
        "sender.template",
        "{code} is your {app_name} verification code. It expires in {minutes} minutes.",
        str,
        "The message text; fields: {code}, {app_name}, {minutes}.",
        check=_template,
    ),
    Key(
        "sender.sms_retriever_hash",
        "",
        str,
        "Android SMS Retriever app hash (11 characters); when set it is added as the last line.",
    ),
    Key("sender.timeout", 10.0, float, "Seconds to wait for an SMS provider or webhook.", check=_between(0.5, 60)),
    # twilio: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
    Key("sender.twilio.account_sid", "", str, "Twilio Account SID (AC...)."),
    Key("sender.twilio.auth_token", "", str, "Twilio auth token (or API key secret). Secret.", secret=True),
    Key("sender.twilio.api_key_sid", "", str, "Optional Twilio API key SID (SK...) used instead of the account SID."),
    Key("sender.twilio.from_number", "", str, "Sender number in E.164 (+1...), or use messaging_service_sid."),
    Key("sender.twilio.messaging_service_sid", "", str, "Twilio Messaging Service SID (MG...)."),
    Key("sender.twilio.api_url", "https://api.twilio.com", str, "Twilio API base URL.", check=_url),
    # vonage: https://developer.vonage.com/en/api/sms
    Key("sender.vonage.api_key", "", str, "Vonage API key."),
    Key("sender.vonage.api_secret", "", str, "Vonage API secret. Secret.", secret=True),
    Key("sender.vonage.from", "", str, "Sender id: a number or an alphanumeric name."),
    Key("sender.vonage.api_url", "https://rest.nexmo.com/sms/json", str, "Vonage SMS API URL.", check=_url),
    # webhook: Standard Webhooks, https://www.standardwebhooks.com/
    Key("sender.webhook.url", "", str, "Where to POST codes for delivery."),
    Key(
        "sender.webhook.secret",
        "",
        str,
        "Signing secret, whsec_<base64> (Standard Webhooks) or any string. Secret.",
        secret=True,
    ),
    # smtp: e-mail codes
    Key("sender.smtp.host", "localhost", str, "SMTP server."),
    Key("sender.smtp.port", 587, int, "SMTP port (587 STARTTLS, 465 SSL, 25 plain).", check=_between(1, 65535)),
    Key("sender.smtp.security", "starttls", str, "starttls, ssl or none.", check=_one_of("starttls", "ssl", "none")),
    Key("sender.smtp.username", "", str, "SMTP login (empty: no login)."),
    Key("sender.smtp.password", "", str, "SMTP password. Secret.", secret=True),
    Key(
        "sender.smtp.ca_file",
        "",
        str,
        "CA bundle that signs the SMTP server's certificate (empty: the system's trusted CAs).",
    ),
    Key("sender.smtp.from_address", "", str, "From: address of code e-mails."),
    Key(
        "sender.smtp.subject",
        "Your {app_name} verification code",
        str,
        "Subject; fields as in the template.",
        check=_template,
    ),
    # -- how users prove who they are
    Key("auth.method", "phone", str, "phone, email, oidc, or module:Class."),
    Key("auth.oidc.issuer", "", str, "OpenID Connect issuer (https://accounts.google.com, https://appleid.apple.com)."),
    Key("auth.oidc.audience", [], list, "Accepted audiences: your OAuth client ids."),
    Key("auth.oidc.jwks_url", "", str, "JWKS URL (empty: from the issuer's discovery document)."),
    Key("auth.oidc.algorithms", ["RS256", "ES256"], list, "Accepted signature algorithms."),
    Key(
        "auth.oidc.address_claim",
        "sub",
        str,
        "Claim that becomes the mesibo address: sub or email.",
        check=_one_of("sub", "email"),
    ),
    Key("auth.oidc.address_prefix", "", str, "Prefix for that address (e.g. 'google:')."),
    Key("auth.oidc.leeway_seconds", 30, int, "Clock skew allowed on exp/iat/nbf.", check=_between(0, 300)),
    Key(
        "auth.oidc.jwks_cache_seconds",
        3600,
        int,
        "How long fetched signing keys are trusted before a refresh.",
        check=_between(60, 86400),
    ),
    # -- the endpoint
    Key("server.max_body_bytes", 65536, int, "Largest request body accepted.", check=_between(256, 16777216)),
    Key("server.cors_origin", "*", str, "Access-Control-Allow-Origin on every answer."),
    Key("server.redirect_url", "https://mesibo.com", str, "Where GET / sends a browser (302).", check=_url),
    Key(
        "server.trusted_proxies",
        0,
        int,
        "How many proxies in front of the service set X-Forwarded-For (0: use the socket address).",
        check=_between(0, 5),
    ),
    Key(
        "server.development",
        "auto",
        str,
        "Development mode (true/false/auto): allows an empty app token and a generated code-hashing key. "
        "auto: on only when nothing is configured (no config file, no app token).",
        check=_one_of("auto", "true", "false", "1", "0", "yes", "no", "on", "off"),
    ),
    Key(
        "server.error_message_text",
        False,
        bool,
        "Add a human-readable 'message_text' to failures (the apps ignore it).",
    ),
    # -- the optional notice after step 1 (the PHP sent title/message/delay)
    Key("login.notice", False, bool, "Send title, message and delay with a successful step 1."),
    Key("login.notice_title", "Verify your number", str, "Title of that notice."),
    Key("login.notice_message", "Enter the verification code we sent you.", str, "Text of that notice."),
    Key("login.notice_delay", 0, int, "The notice's delay field, in seconds.", check=_between(0, 3600)),
    # -- what a successful login hands to the app
    Key("app.upload_url", "https://s3.mesibo.com/api.php", str, "urls.upload"),
    Key("app.download_url", "https://appimages.mesibo.com/", str, "urls.download"),
    Key("app.fileurl", "https://appimages.mesibo.com/", str, "fileurl"),
    Key("app.downloadurl", "https://media.mesibo.com/files/", str, "downloadurl"),
    Key("app.uploadurl", "https://app.mesibo.com/api.php", str, "uploadurl"),
    Key("app.uiconfig", "https://app.mesibo.com/api.php", str, "uiconfig"),
    Key(
        "app.invite_text",
        "Hey, I use Mesibo for free messaging, voice and video calls. Download it from https://m.mesibo.com",
        str,
        "invite and share.text",
    ),
    Key("app.invite_subject", "Mesibo Messenger: Open Source Messenger", str, "share.subject"),
    Key("app.invite_title", "Invite a friend via", str, "share.title"),
    # -- abuse limits (0 turns a limit off)
    Key(
        "limits.resend_cooldown_seconds", 60, int, "Seconds between two codes for one phone.", check=_between(0, 86400)
    ),
    Key("limits.sends_per_phone_per_hour", 5, int, "Codes sent to one phone per hour.", check=_between(0, 1000000)),
    Key(
        "limits.sends_per_ip_per_hour",
        20,
        int,
        "Codes requested by one client IP per hour.",
        check=_between(0, 1000000),
    ),
    Key(
        "limits.checks_per_ip_per_10min",
        60,
        int,
        "Code checks by one client IP per 10 minutes.",
        check=_between(0, 1000000),
    ),
    Key(
        "limits.failures_per_phone_per_day",
        20,
        int,
        "Wrong codes for one phone per 24 hours, across codes; then the phone is locked.",
        check=_between(0, 100),
    ),
    Key(
        "limits.global_sends_per_hour",
        1000,
        int,
        "Codes sent by the whole service per hour.",
        check=_between(0, 100000000),
    ),
    # -- phone policy and test numbers
    Key(
        "phones.allow_calling_codes",
        [],
        list,
        "Only these calling codes may log in (empty: all).",
        check=_calling_codes,
    ),
    Key("phones.deny_calling_codes", [], list, "These calling codes may not log in.", check=_calling_codes),
    Key(
        "phones.test_numbers",
        {},
        dict,
        "Phone -> fixed code (or {code, until}) for app-store review; no SMS is sent.",
        check=_test_numbers,
    ),
    # -- operations
    Key("metrics.enabled", True, bool, "Serve Prometheus metrics."),
    Key("metrics.path", "/metrics", str, "Where the service serves metrics (when metrics.port is 0)."),
    Key(
        "metrics.port",
        0,
        int,
        "Serve metrics on this separate port instead (from the gunicorn master; 0: on the service's own port).",
        check=_between(0, 65535),
    ),
    Key("metrics.bind", "127.0.0.1", str, "Address of that separate metrics port."),
    # -- logging
    Key("logging.level", "INFO", str, "Log level.", check=_one_of("DEBUG", "INFO", "WARNING", "ERROR")),
    Key("logging.json", False, bool, "Write log lines as JSON objects."),
    Key("logging.requests", True, bool, "Write one line per API request."),
)

KEYS_BY_NAME = {key.name: key for key in KEYS}


def _coerce(key: Key, value: Any, source: str) -> Any:
    """Turn a TOML or environment value into the key's type, or raise ConfigError."""
    kind = key.kind
    from_env = source == "env"
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if from_env and str(value).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if from_env and str(value).strip().lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, int) or from_env:
                return int(value)
            raise ValueError
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, (int, float)) or from_env:
                return float(value)
            raise ValueError
        if kind is str:
            if isinstance(value, str):
                return value.strip()
            raise ValueError
        if kind is list:
            if from_env:
                return [part.strip() for part in str(value).split(",") if part.strip()]
            if isinstance(value, list):
                return [str(item) for item in value]
            raise ValueError
        if kind is dict:
            if from_env:
                value = json.loads(value) if str(value).strip() else {}
            if isinstance(value, dict):
                return value
            raise ValueError
    except (TypeError, ValueError):
        pass
    where = f"environment variable {key.env}" if from_env else "the configuration file"
    raise ConfigError(key.name, f"expected {kind.__name__}, got {value!r} from {where}")


def _env_value(key: Key, environ: Mapping[str, str]) -> tuple[bool, Any]:
    for name in (*key.aliases, key.env):
        if name in environ:
            return True, environ[name]
        if key.secret and f"{name}_FILE" in environ:
            path = environ[f"{name}_FILE"]
            try:
                with open(path, encoding="utf-8") as handle:
                    return True, handle.read().strip()
            except OSError as exc:
                raise ConfigError(key.name, f"cannot read {name}_FILE={path}: {exc.strerror}") from None
    return False, None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        dotted = f"{prefix}{name}"
        if dotted in KEYS_BY_NAME:
            flat[dotted] = value
        elif isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def load(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the configuration: defaults, then the TOML file, then the environment, then overrides.

    ``overrides`` (dotted names) is for tests and embedding; it is validated like the rest.
    Sections outside the known keys (a custom sender's own table) are passed through untouched
    under their dotted names so plug-ins can read them.
    """
    environ = os.environ if environ is None else environ
    values = {key.name: key.default for key in KEYS}
    extra: dict[str, Any] = {}
    path = environ.get("MESSENGER_CONFIG", "")
    if path:
        try:
            with open(path, "rb") as handle:
                table = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError("MESSENGER_CONFIG", f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("MESSENGER_CONFIG", f"{path} is not valid TOML: {exc}") from None
        for name, value in _flatten(table).items():
            key = KEYS_BY_NAME.get(name)
            if key is None:
                extra[name] = value
            else:
                values[name] = _coerce(key, value, "file")
    for key in KEYS:
        found, value = _env_value(key, environ)
        if found:
            values[key.name] = _coerce(key, value, "env")
    for name, value in (overrides or {}).items():
        key = KEYS_BY_NAME.get(name)
        if key is None:
            extra[name] = value
        else:
            values[name] = _coerce(key, value, "file")
    for key in KEYS:
        if key.check is not None:
            problem = key.check(values[key.name])
            if problem:
                raise ConfigError(key.name, problem)
    values.update(extra)
    return values


def secrets(values: Mapping[str, Any]) -> list[str]:
    """The secret values in this configuration, for the log redactor."""
    found = [values[key.name] for key in KEYS if key.secret and values.get(key.name)]
    found += [value for name, value in values.items() if name not in KEYS_BY_NAME and _looks_secret(name, value)]
    return [value for value in found if isinstance(value, str) and len(value) >= 6]


def _looks_secret(name: str, value: Any) -> bool:
    last = name.rsplit(".", 1)[-1]
    return isinstance(value, str) and any(word in last for word in ("token", "secret", "password", "key"))


def load_object(spec: str, key: str) -> Any:
    """Import ``module:Name``; a wrong spec stops start-up naming ``key``."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(key, f"expected a known name or module:Class, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(key, f"cannot load {spec!r}: {exc}") from None


def development_mode(values: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
    setting = str(values["server.development"]).lower()
    if setting == "auto":
        return not environ.get("MESSENGER_CONFIG") and not values["mesibo.app_token"]
    return setting in ("true", "1", "yes", "on")


def is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDERS or value.strip().startswith("<")


parse_until = _parse_until


def example_toml() -> str:
    """config.example.toml, made from KEYS so it documents every key with its default.

    Regenerate: python -c "from app.config import example_toml; print(example_toml(), end='')" > config.example.toml
    """

    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, list):
            return "[" + ", ".join(json.dumps(item) for item in value) + "]"
        if isinstance(value, dict):
            return "{}"
        return json.dumps(value)

    lines = [
        "# messenger-backend configuration: every key with its default and what it does.",
        "# Use it with MESSENGER_CONFIG=/path/to/config.toml. Any key can also be set from the environment",
        "# as MESSENGER_<SECTION>_<KEY> (otp.digits -> MESSENGER_OTP_DIGITS); the environment wins.",
        "# Keep secrets out of this file: MESIBO_APP_TOKEN, OTP_SECRET and the provider secrets can come from",
        "# the environment or from files (MESIBO_APP_TOKEN_FILE=/run/secrets/token).",
        "# This file is generated from app/config.py (see example_toml there).",
    ]
    section = None
    for key in KEYS:
        table, name = key.name.rsplit(".", 1)
        if table != section:
            lines += ["", f"[{table}]"]
            section = table
        names = " or ".join((*key.aliases, key.env))
        lines.append(f"# {key.doc}")
        lines.append(f"# environment: {names}")
        if key.name == "phones.test_numbers":
            lines.append(
                '# e.g. test_numbers = { "15550001111" = "123456", '
                '"15550002222" = { code = "654321", until = "2027-06-30" } }'
            )
        lines.append(f"{name} = {literal(key.default)}")
    return "\n".join(lines) + "\n"
