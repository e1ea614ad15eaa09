"""The private API backend for the mesibo messenger apps."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from . import config as config_module
from .config import ConfigError

__all__ = ["create_app", "ConfigError"]

logger = logging.getLogger("app")


def create_app(
    test_config: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **services_kwargs: Any,
) -> Flask:
    """Build the service.

    ``test_config`` overrides configuration keys by dotted name; ``services_kwargs`` replace
    services (``clock``, ``store``, ``sender``, ``mesibo``) - both for tests and embedding.
    A wrong configuration raises ConfigError naming the key.
    """
    from . import api, cli, logs, monitoring
    from .metrics import Metrics
    from .services import Services

    environ = os.environ if environ is None else environ
    values = config_module.load(environ, test_config)
    logs.configure(values["logging.level"], values["logging.json"])
    logs.install_redaction(config_module.secrets(values))
    development = config_module.development_mode(values, environ)

    app = Flask(__name__, instance_path=environ.get("MESSENGER_INSTANCE_PATH") or None)
    database_url = values["database.url"]
    if not database_url:
        os.makedirs(app.instance_path, exist_ok=True)
        database_url = "sqlite:///" + os.path.join(app.instance_path, "messenger.db")
    _check_secrets(values, development)

    if values["metrics.enabled"] and "metrics" not in services_kwargs:
        services_kwargs["metrics"] = Metrics()
    services = Services(values, database_url=database_url, development=development, **services_kwargs)
    if values["database.migrate_on_start"]:
        services.store.migrate()
        # gunicorn may fork after this (preload_app); each worker opens its own connections.
        services.store.close()
    app.extensions["messenger"] = services
    app.config["MAX_CONTENT_LENGTH"] = values["server.max_body_bytes"]

    if values["server.trusted_proxies"]:
        hops = values["server.trusted_proxies"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    app.register_blueprint(api.bp)
    serve_metrics = values["metrics.enabled"] and not values["metrics.port"]
    monitoring.init_app(app, metrics_path=values["metrics.path"] if serve_metrics else None)
    app.before_request(api.before_request)
    app.after_request(api.after_request)
    app.register_error_handler(Exception, _error_handler)
    cli.init_app(app)
    _report_start(values, services, database_url)
    return app


def _error_handler(exc: Exception):
    """POSTs always get the envelope; other methods keep the HTTP error as JSON."""
    from .api import answer, internal_error
    from .errors import ApiError, failure

    if isinstance(exc, HTTPException):
        if request.method == "POST":
            response = answer(failure("", ApiError("BADREQUEST")))
            response.status_code = 200 if exc.code == 413 else (exc.code or 400)
        else:
            response = answer({"error": exc.name, "status": exc.code})
            response.status_code = exc.code or 500
        allow = exc.get_response().headers.get("Allow")  # a 405 must say what is allowed
        if allow:
            response.headers["Allow"] = allow
        return response
    return internal_error(exc)


def _check_secrets(values: Mapping[str, Any], development: bool) -> None:
    token = values["mesibo.app_token"]
    if not development and (not token or config_module.is_placeholder(token)):
        raise ConfigError("mesibo.app_token", "is empty or a placeholder; set MESIBO_APP_TOKEN")


def _report_start(values: Mapping[str, Any], services: Any, database_url: str) -> None:
    where = database_url if database_url.startswith("sqlite") else database_url.split("@")[-1]
    logger.info(
        "messenger backend ready: store %s, sender %s, mesibo %s (%s style)",
        where,
        values["sender.name"],
        values["mesibo.api_url"],
        values["mesibo.api_style"],
    )
    if services.development:
        logger.warning("development mode: do not expose this instance to the internet")
    if not values["mesibo.app_token"]:
        logger.warning("no mesibo app token: logins will answer BADAPP until MESIBO_APP_TOKEN is set")
    if values["mesibo.api_style"] == "legacy":
        logger.warning(
            "mesibo.api_style = legacy puts the app token in request URLs, where proxies and "
            "logs may keep it; prefer the default 'backend' style"
        )
    if values["sender.name"] == "log" and not services.development:
        logger.warning("sender 'log' writes codes to the log and sends no SMS")
    if services.test_numbers:
        logger.info("test numbers (no SMS, fixed code): %s", ", ".join(services.test_numbers.phones()))
