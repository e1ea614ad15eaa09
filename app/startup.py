"""The start-up gate: whether the service may start with the settings ``app.config`` has read -
development mode, the app token, the code-hashing key - and whether every wait of a login fits
inside the request's deadline."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from . import plugins
from .schema import ConfigError, is_placeholder
from .settings import Settings

logger = logging.getLogger("app.config")


def gate(
    core: dict[str, Any],
    sections: dict[str, Any],
    environ: Mapping[str, str],
    instance_path: str,
    sender_cls: type,
    method_cls: type,
) -> Settings:
    """Whether the service may start: development mode, the app token, the code-hashing key."""
    setting = core["server"].development
    token, secret = core["mesibo"].app_token, core["otp"].secret
    development = (not environ.get("MESSENGER_CONFIG") and not token) if setting == "auto" else setting == "true"
    database_url = core["database"].url or "sqlite:///" + os.path.join(instance_path, "messenger.db")
    if not development and (not token or is_placeholder(token)):
        raise ConfigError("mesibo.app_token", "is empty or a placeholder; set MESIBO_APP_TOKEN")
    if secret and not is_placeholder(secret):
        if len(secret) < 16:
            raise ConfigError("otp.secret", "must be at least 16 characters (e.g. `openssl rand -hex 32`)")
    elif not development:
        raise ConfigError("otp.secret", "is empty or a placeholder; set OTP_SECRET (e.g. `openssl rand -hex 32`)")
    elif not database_url.startswith("sqlite:///"):
        raise ConfigError("otp.secret", "must be set when the database is shared (PostgreSQL)")
    _check_deadline(core, shared=not database_url.startswith("sqlite:///"))
    _warn_outbound(core, sections, sender_cls, method_cls, shared=not database_url.startswith("sqlite:///"))
    return Settings(
        **core,
        plugins=sections,
        development=development,
        database_url=database_url,
        sender_class=sender_cls,
        method_class=method_cls,
    )


def worst_login_seconds(core: dict[str, Any], *, shared: bool) -> float:
    """The longest a login can wait, all waits added: two store transactions (the check, then the
    consume), each waiting for its lock at most ``busy_timeout_ms`` - and for a pooled connection
    ``pool_timeout`` on PostgreSQL - and one mesibo call of connect + read timeout."""
    database, mesibo = core["database"], core["mesibo"]
    store = database.busy_timeout_ms / 1000 + (database.pool_timeout if shared else 0.0)
    return 2 * store + mesibo.connect_timeout + mesibo.read_timeout


def _check_deadline(core: dict[str, Any], *, shared: bool) -> None:
    worst = worst_login_seconds(core, shared=shared)
    deadline = core["server"].request_deadline_seconds
    if worst > deadline:
        raise ConfigError(
            "server.request_deadline_seconds",
            f"is {deadline:g} s, but a login may wait {worst:g} s (2 x (database.busy_timeout_ms"
            f"{' + database.pool_timeout' if shared else ''}) + mesibo.connect_timeout + mesibo.read_timeout): "
            "raise it (below the proxy's read timeout) or lower those",
        )


def _outbound_seconds(sections: dict[str, Any], cls: type) -> float:
    """The longest one call of a login method or sender may wait, when its settings say
    (``worst_seconds()``: the LDAP, RADIUS and OpenID Connect logins do)."""
    declared = plugins.section_of(cls)
    worst = getattr(sections.get(declared[0]) if declared else None, "worst_seconds", None)
    return float(worst()) if callable(worst) else 0.0


def _warn_outbound(
    core: dict[str, Any], sections: dict[str, Any], sender_cls: type, method_cls: type, *, shared: bool
) -> None:
    """Every outbound call ends within what is left of the request's deadline, so a directory or a
    provider slower than its own timeouts never holds a login past it; but a configuration whose
    timeouts add up to more than the deadline has logins cut short where they would have
    succeeded - said once at start-up."""
    store = core["database"].busy_timeout_ms / 1000 + (core["database"].pool_timeout if shared else 0.0)
    sender = min(3.05, core["sender"].timeout) + core["sender"].timeout
    provider = core["attestation"].provider
    gate = min(3.05, core["attestation"].timeout) + core["attestation"].timeout if provider else 0.0
    gate *= {"play_integrity": 2, "app_attest": 0}.get(provider, 1)  # Play: a token, then the verdict
    steps = {
        "step 1 (attestation, store, sender)": gate + 2 * store + sender + _outbound_seconds(sections, sender_cls),
        "a proof (store, login method, mesibo)": worst_login_seconds(core, shared=shared)
        + _outbound_seconds(sections, method_cls),
    }
    deadline = core["server"].request_deadline_seconds
    for step, seconds in steps.items():
        if seconds > deadline:
            logger.warning(
                "the timeouts of %s add up to %.4g s, more than server.request_deadline_seconds (%g s): "
                "when every wait is that slow, the login answers its error at the deadline",
                step,
                seconds,
                deadline,
            )
