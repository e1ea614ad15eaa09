"""The app-scoped services, built once from the configuration and reached through one object."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import config as config_module
from .auth import AuthMethod, build_method
from .codes import Codes
from .config import ConfigError
from .errors import static_headers
from .limits import Limits
from .mesibo import MesiboClient
from .phones import PhonePolicy
from .senders import Sender, build_sender
from .store import Refusal, SqlStore, open_store

logger = logging.getLogger("app")


class TestNumbers:
    """Configured phone -> fixed code, each optionally until an end date."""

    def __init__(self, table: Mapping[str, Any]):
        self._codes: dict[str, tuple[str, float | None]] = {}
        for phone, entry in table.items():
            if isinstance(entry, dict):
                until = config_module.parse_until(entry["until"]) if entry.get("until") else None
                self._codes[str(phone).lstrip("+")] = (str(entry["code"]), until)
            else:
                self._codes[str(phone).lstrip("+")] = (str(entry), None)

    def __bool__(self) -> bool:
        return bool(self._codes)

    def phones(self) -> list[str]:
        return sorted(self._codes)

    def code_for(self, digits: str, now: float) -> str | None:
        found = self._codes.get(digits)
        if found is None:
            return None
        code, until = found
        return code if until is None or now < until else None


def _otp_secret(values: Mapping[str, Any], database_url: str, development: bool) -> bytes:
    """The code-hashing key: configured, or (development, SQLite) generated once and kept beside the database."""
    configured = values["otp.secret"]
    if configured and not config_module.is_placeholder(configured):
        if len(configured) < 16:
            raise ConfigError("otp.secret", "must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        return configured.encode()
    if not development:
        raise ConfigError("otp.secret", "is empty or a placeholder; set OTP_SECRET (e.g. `openssl rand -hex 32`)")
    if not database_url.startswith("sqlite:///"):
        raise ConfigError("otp.secret", "must be set when the database is shared (PostgreSQL)")
    path = os.path.abspath(database_url[len("sqlite:///") :]) + ".otp-key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip().encode()
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        key = secrets.token_hex(32)
        handle.write(key + "\n")
    logger.warning("generated a code-hashing key in %s (set OTP_SECRET in production)", path)
    return key.encode()


class Services:
    """Everything a request handler needs; tests replace parts through the constructor."""

    def __init__(
        self,
        values: Mapping[str, Any],
        *,
        database_url: str,
        development: bool,
        clock: Callable[[], float] = time.time,
        store: SqlStore | None = None,
        sender: Sender | None = None,
        mesibo: MesiboClient | None = None,
        metrics: Any = None,
    ):
        self.config = values
        self.development = development
        self.clock = clock
        self.metrics = metrics
        self.database_url = database_url
        self._last_tidy = 0
        self.answer_headers = static_headers(values["server.cors_origin"])
        self.codes = Codes(
            _otp_secret(values, database_url, development),
            digits=values["otp.digits"],
            ttl_seconds=values["otp.ttl_seconds"],
            max_attempts=values["otp.max_attempts"],
        )
        self.limits = Limits(values)
        self.phones = PhonePolicy(allow=values["phones.allow_calling_codes"], deny=values["phones.deny_calling_codes"])
        self.test_numbers = TestNumbers(values["phones.test_numbers"])
        self.store = store or open_store(database_url, values)
        self.sender = sender or build_sender(values)
        self.mesibo = mesibo or MesiboClient(
            values["mesibo.api_url"],
            values["mesibo.app_token"],
            style=values["mesibo.api_style"],
            connect_timeout=values["mesibo.connect_timeout"],
            read_timeout=values["mesibo.read_timeout"],
            observe=self.observe_mesibo,
        )
        self.auth: AuthMethod = build_method(values)

    def now(self) -> int:
        return int(self.clock())

    # Lazy housekeeping: at most one small batch per interval per process, so expired rows
    # never pile up even without the purge timer, and no login waits on a big delete.
    TIDY_INTERVAL = 60
    TIDY_BATCH = 500

    def tidy(self, now: int) -> None:
        if now - self._last_tidy < self.TIDY_INTERVAL:
            return
        self._last_tidy = now
        try:
            self.store.purge(now, self.TIDY_BATCH, max_batches=1)
        except Exception:  # housekeeping must never fail a login
            logger.warning("lazy purge failed", exc_info=True)

    def login_notice(self) -> dict[str, Any]:
        if not self.config["login.notice"]:
            return {}
        return {
            "title": self.config["login.notice_title"],
            "message": self.config["login.notice_message"],
            "delay": self.config["login.notice_delay"],
        }

    def login_answer(self, address: str, token: str) -> dict[str, Any]:
        """The fields of a successful login, with the types the apps parse (contract section 3)."""
        c = self.config
        return {
            "token": token,
            "phone": address,
            "urls": {"upload": c["app.upload_url"], "download": c["app.download_url"]},
            "share": {"text": c["app.invite_text"], "subject": c["app.invite_subject"], "title": c["app.invite_title"]},
            "invite": c["app.invite_text"],
            "fileurl": c["app.fileurl"],
            "downloadurl": c["app.downloadurl"],
            "uploadurl": c["app.uploadurl"],
            "uiconfig": c["app.uiconfig"],
        }

    # -- observations (metrics are optional) ---------------------------------

    def observe_refusal(self, refusal: Refusal) -> None:
        kind = Limits.kind(refusal.key)
        # DEBUG: a flood makes thousands of these; the request line already says RATELIMIT.
        logger.debug("limit %s refused a request (retry after %ds)", kind, refusal.retry_after)
        if self.metrics:
            self.metrics.refusal(kind)

    def observe_send(self, outcome: str) -> None:
        if self.metrics:
            self.metrics.sent(self.config["sender.name"], outcome)

    def observe_mesibo(self, op: str, seconds: float, outcome: str) -> None:
        if self.metrics:
            self.metrics.mesibo(op, seconds, outcome)
