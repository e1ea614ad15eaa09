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


# A load balancer's health check gives up after a few seconds; answer well within that.
READY_WITHIN_SECONDS = 1.5


def readyz() -> Response:
    """A login could be stored now; a load balancer sends traffic only when this is 200."""
    services = of(current_app)
    problem = services.store.unready(READY_WITHIN_SECONDS)
    services.metrics.readiness(problem is None)
    if problem:
        logger.warning("not ready: %s", problem)
        response = jsonify(status="unavailable", database=problem)
        response.status_code = 503
        return response
    return jsonify(status="ready", database="ok")


def metrics() -> Response:
    metrics = of(current_app).metrics
    assert isinstance(metrics, Metrics)  # the route exists only when metrics are on
    problem = metrics.unavailable()
    if problem:  # an empty 200 would read as "no traffic" to Prometheus; this reads as a failed scrape
        response = jsonify(status="unavailable", metrics=problem)
        response.status_code = 503
        return response
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
