"""The private API backend for the mesibo messenger apps."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .cors import Cors
from .schema import ConfigError

__all__ = ["create_app", "ConfigError"]

logger = logging.getLogger("app")


def create_app(
    test_config: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **replacements: Any,
) -> Flask:
    """Build the service.

    ``test_config`` overrides configuration keys by dotted name; ``replacements`` hand in services
    (``clock``, ``store``, ``sender``, ``mesibo``, ``metrics``) - both for tests and embedding.
    A wrong configuration raises ConfigError naming the key.
    """
    from . import api, cli, config, logs, monitoring, receipts, saml_acs, services

    environ = os.environ if environ is None else environ
    # ./instance of the folder it runs in - not Flask's default, which moves into the virtual
    # environment once the package is installed (pip install .) rather than run from a checkout
    instance = environ.get("MESSENGER_INSTANCE_PATH") or os.path.join(os.getcwd(), "instance")
    app = Flask(__name__, instance_path=os.path.abspath(instance))
    try:
        settings = config.load(environ, test_config, instance_path=app.instance_path)
    except ConfigError as error:
        _stop_command(error)
        raise
    logs.configure(settings.logging.level, settings.logging.json)
    logs.install_redaction(settings.secrets())

    cors = Cors(settings.server.cors_origins, settings.server.cors_max_age)

    def prepare() -> services.Services:
        try:  # a login method whose extra is missing, a sender's or gate's key: ConfigError here too
            if settings.database_url == "sqlite:///" + os.path.join(app.instance_path, "messenger.db"):
                _make_folder(app.instance_path)
            built = services.build(settings, cors=cors, **replacements)
            if settings.database.migrate_on_start:
                _migrate(built.store)
        except ConfigError as error:
            _stop_command(error)
            raise
        return built

    import click

    # a server (gunicorn, flask run, a test's app) is made whole now, so it fails at start; a command
    # builds what it uses when it first asks - one that only reads (--help, version) makes no file
    context = click.get_current_context(silent=True)
    serving = context is None or context.info_name == "run"
    if serving:
        built = prepare()
        services.attach(app, built)
    else:
        services.attach_later(app, prepare)
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    if settings.server.trusted_proxies:
        hops = settings.server.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    api.init_app(app, cors)
    serve_metrics = settings.metrics.enabled and not settings.metrics.port
    monitoring.init_app(app, metrics_path=settings.metrics.path if serve_metrics else None)
    app.register_blueprint(receipts.bp)
    app.register_blueprint(saml_acs.bp)
    cli.init_app(app)
    if serving:  # the start-up report is for a server; a command prints what it has to say
        _report_start(built)
    return app


def _make_folder(path: str) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "MESSENGER_INSTANCE_PATH",
            f"cannot make the folder {path}: {exc.strerror} (set "
            "MESSENGER_INSTANCE_PATH to one this user may write, or DATABASE_URL)",
        ) from None


def _migrate(store: Any) -> None:
    """Bring the schema up to date at start; a database that cannot be opened or written is one line
    naming ``database.url`` (not a traceback from the driver)."""
    try:
        store.migrate()
    except Exception as exc:
        if not isinstance(exc, OSError) and not type(exc).__module__.startswith(("sqlite3", "psycopg")):
            raise
        raise ConfigError(
            "database.url",
            f"cannot open or write the database ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no details'}): is its folder writable "
            "by this user, is the server up?",
        ) from None
    # gunicorn may fork after this (preload_app); each worker opens its own connections.
    store.close()


def _stop_command(error: ConfigError) -> None:
    """Under a ``flask`` command a configuration error is one line and exit status 1, not a traceback
    (gunicorn gets the same from wsgi.py)."""
    import click

    if click.get_current_context(silent=True) is not None:
        raise click.ClickException(f"messenger-backend cannot start: {error}") from None


def message_lengths(built: Any) -> list[str]:
    """Each message template's length in SMS, rendered with a code of the configured length."""
    settings = built.settings
    sample = {
        "code": "0" * settings.otp.digits,
        "app_name": settings.sender.app_name,
        "minutes": max(1, settings.otp.ttl_seconds // 60),
        "retriever_hash": settings.sender.sms_retriever_hash,
    }
    return built.login.kit.texts.report(sample) if built.login.kit.texts else []


def _report_start(built: Any) -> None:
    settings = built.settings
    url = settings.database_url
    where = url if url.startswith("sqlite") else url.split("@")[-1]
    logger.info(
        "messenger backend ready: store %s, sender %s, login %s, mesibo %s (%s style)",
        where,
        settings.sender.name,
        settings.auth.method,
        settings.mesibo.api_url,
        settings.mesibo.api_style,
    )
    if settings.development:
        logger.warning("development mode: do not expose this instance to the internet")
    if "gunicorn" in sys.modules and settings.metrics.enabled and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        logger.warning("metrics are per worker process: start gunicorn with -c deploy/gunicorn.conf.py")
    if not settings.mesibo.app_token:
        logger.warning("no mesibo app token: logins will answer BADAPP until MESIBO_APP_TOKEN is set")
    if settings.mesibo.api_style == "legacy":
        logger.warning(
            "mesibo.api_style = legacy puts the app token in request URLs, where proxies and "
            "logs may keep it; prefer the default 'backend' style"
        )
    if not settings.server.appids and not settings.development:
        logger.warning("server.appids is empty: any appid is served; list your apps' ids to refuse others (BADAPPID)")
    if settings.sender.name == "log" and built.login.sends_codes and not settings.development:
        logger.warning("sender 'log' writes codes to the log and sends no SMS")
    for line in message_lengths(built):
        logger.info("message %s", line)
    if built.test_numbers:
        logger.info("test numbers (no SMS, fixed code): %s", ", ".join(built.test_numbers.phones()))
