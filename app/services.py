"""The app-scoped services: built once in ``create_app`` from the settings and reached through one
accessor, ``of(app)`` (``of(current_app)`` in a request or command). A plain container: the
behaviour lives with each service. No Flask here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .attestation import Gate
from .audit import Auditor
from .auth import Login, LoginKit
from .codes import Codes, hashing_key
from .cors import Cors
from .limits import Limits
from .mesibo import MesiboClient
from .messages import Texts
from .metrics import Metrics, NoMetrics
from .phones import PhonePolicy, TestNumbers
from .schema import ConfigError, is_placeholder
from .senders import Sender
from .senders.router import Router
from .settings import Settings
from .store import SqlStore, open_store
from .tokens import MintedTokens

EXTENSION = "messenger"


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Callable[[], float]
    store: SqlStore
    sender: Sender
    mesibo: MesiboClient
    metrics: NoMetrics
    codes: Codes
    test_numbers: TestNumbers
    login: Login
    auditor: Auditor
    limits: Limits
    cors: Cors  # which web pages may call the service
    tokens: MintedTokens  # whose each minted token is, for logout

    def now(self) -> int:
        return int(self.clock())


def build(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    store: SqlStore | None = None,
    sender: Sender | None = None,
    mesibo: MesiboClient | None = None,
    metrics: NoMetrics | None = None,
    cors: Cors | None = None,
) -> Services:
    """Every service from the settings; tests and embedders may hand in their own of each."""
    db = settings.database
    store = store or open_store(
        settings.database_url,
        synchronous=db.sqlite_synchronous,
        busy_timeout_ms=db.busy_timeout_ms,
        pool_size=db.pool_size,
        connect_timeout=db.connect_timeout,
        pool_timeout=db.pool_timeout,
    )
    metrics = metrics or (Metrics(settings.sender.name) if settings.metrics.enabled else NoMetrics())
    if sender is None:
        sender = settings.sender_class(settings.plugin(_section(settings.sender_class)), settings.sender)
    # the senders sender.routes names besides sender.name's, each built once
    senders = {settings.sender.name: sender} | {
        name: cls(settings.plugin(_section(cls)), settings.sender)
        for name, cls in settings.route_classes.items()
        if name != settings.sender.name
    }
    secret = "" if is_placeholder(settings.otp.secret) else settings.otp.secret
    codes_key = hashing_key(secret, settings.database_url)
    codes = Codes(codes_key, settings.otp)
    test_numbers = TestNumbers(settings.phones.test_numbers)
    mesibo = mesibo or MesiboClient(settings.mesibo, metrics)
    limits = Limits(settings.limits, codes.blind)
    kit = LoginKit(
        store=store,
        limits=limits,
        codes=codes,
        sender=sender,
        messages=settings.sender,
        phones=PhonePolicy(
            allow=settings.phones.allow_calling_codes,
            deny=settings.phones.deny_calling_codes,
            refuse_types=settings.phones.refuse_types,
        ),
        test_numbers=test_numbers,
        metrics=metrics,
        clock=clock,
        # mesibo answers within connect + read timeout (a total deadline); the claim outlives that
        claim_seconds=int(settings.mesibo.connect_timeout + settings.mesibo.read_timeout) + 2,
        mesibo=mesibo,
        delete_op=settings.mesibo.delete_op,
        gate=Gate(settings.attestation, codes_key, store),
        texts=Texts(settings.messages, settings.sender.template, settings.sender.delete_template),
        router=Router(senders, settings.sender.routes, settings.sender.name) if settings.sender.routes else None,
    )
    if not issubclass(settings.method_class, Login):
        raise ConfigError(
            "auth.method",
            f"{settings.method_class.__name__} must subclass app.auth.OneStepLogin or app.auth.TwoStepLogin",
        )
    login = settings.method_class(settings.plugin(_section(settings.method_class)), kit)
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        sender=sender,
        mesibo=mesibo,
        metrics=metrics,
        codes=codes,
        test_numbers=test_numbers,
        login=login,
        auditor=Auditor(codes_key, settings.audit, store, metrics),
        limits=limits,
        cors=cors or Cors(settings.server.cors_origins, settings.server.cors_max_age),
        tokens=MintedTokens(codes_key, codes.blind, settings.mesibo.token_expiry_minutes * 60),
    )


def _section(cls: type) -> str | None:
    return getattr(cls, "section", None) if hasattr(cls, "Settings") else None


def of(app: Any) -> Services:
    """The services of a Flask app (``of(current_app)`` inside a request or command); a command's
    app builds them here, when the command first asks (see ``attach_later``)."""
    try:
        return app.extensions[EXTENSION]
    except KeyError:
        services = app.extensions[EXTENSION + ".later"]()  # a configuration error: the command's one line
        attach(app, services)
        return services


def attach(app: Any, services: Services) -> None:
    app.extensions[EXTENSION] = services


def attach_later(app: Any, make: Callable[[], Services]) -> None:
    """Build the services only when something asks for them: a command that only reads (``--help``,
    ``version``, ``routes``) then opens no database and writes no file."""
    app.extensions[EXTENSION + ".later"] = make
