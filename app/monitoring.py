"""The endpoints around the API: health, readiness, metrics and the API description.

All cheap, none touching mesibo."""

from __future__ import annotations

import logging
from importlib import resources

from flask import Flask, Response, current_app, jsonify

from .metrics import Metrics
from .services import of

logger = logging.getLogger("app.monitoring")


def healthz() -> Response:
    """The process is alive and serving."""
    return jsonify(status="ok")


def readyz() -> Response:
    """The database answers; a load balancer sends traffic only when this is 200."""
    try:
        of(current_app).store.ping()
    except Exception as exc:
        logger.warning("readiness check failed: %s", type(exc).__name__)
        response = jsonify(status="unavailable", database="unreachable")
        response.status_code = 503
        return response
    return jsonify(status="ready", database="ok")


def metrics() -> Response:
    metrics = of(current_app).metrics
    assert isinstance(metrics, Metrics)  # the route exists only when metrics are on
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


def init_app(app: Flask, *, metrics_path: str | None) -> None:
    description = (resources.files("app") / "openapi.json").read_bytes()  # read once, served as is
    app.add_url_rule(
        "/openapi.json", "openapi", lambda: Response(description, mimetype="application/json"), methods=["GET"]
    )
    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])
    if metrics_path:
        app.add_url_rule(metrics_path, "metrics", metrics, methods=["GET"])
