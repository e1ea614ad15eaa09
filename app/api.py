"""The one endpoint: read the body (JSON, relaxed JSON, form, query), dispatch on op, answer the envelope."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

import json5
from flask import Blueprint, Response, current_app, g, redirect, request

from .errors import ApiError, envelope, failure
from .fields import Fields
from .ops import OPS
from .services import Services

bp = Blueprint("api", __name__)
logger = logging.getLogger("app.api")
request_log = logging.getLogger("app.requests")

# The relaxed reading is for people typing curl (the tutorial's body is 65 bytes). The parser is
# pure Python - 4 KiB of made-up object took 42 ms of CPU when measured - so only small bodies
# get it, or it would be a cheap way to burn the server's CPU.
RELAXED_MAX_BYTES = 512


def services() -> Services:
    return current_app.extensions["messenger"]


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object: strict, then relaxed (unquoted keys, single quotes); None when neither."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
        if len(raw) <= RELAXED_MAX_BYTES:
            try:
                value = json5.loads(raw.decode("utf-8"))
            except Exception:  # json5 raises several types on garbage; any failure means "not JSON"
                value = None
    else:
        if not isinstance(value, dict):
            raise ApiError("BADREQUEST", detail="the body is JSON but not an object")
    return value if isinstance(value, dict) else None


def _form(raw: bytes) -> dict[str, Any] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "=" not in text:
        return None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=100)
    except ValueError:
        return None
    return dict(pairs) or None


def read_fields(limit: int) -> dict[str, Any]:
    """The request's fields. Body first; query-string fields fill in what the body lacks."""
    environ = request.environ
    query = request.args.to_dict() if environ.get("QUERY_STRING") else {}
    length = request.content_length
    if length is not None and length > limit:
        _discard_body(length)
        raise ApiError("BADREQUEST", detail="the body is too large")
    multipart = environ.get("CONTENT_TYPE", "")[:10].lower() == "multipart/"
    if length is not None and not multipart:
        # The common case, read straight from the server: the length is known and within the limit.
        raw = environ["wsgi.input"].read(length)
    else:
        # Cached, so a multipart form can still be parsed from it; MAX_CONTENT_LENGTH bounds a body
        # sent without Content-Length (chunked), and werkzeug's 413 is answered with the envelope.
        raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise ApiError("BADREQUEST", detail="the body is too large")
    if not raw.strip():
        return query
    body = _json_object(raw)
    if body is None and multipart and request.mimetype == "multipart/form-data":
        body = request.form.to_dict() or None
    if body is None:
        body = _form(raw)
    if body is None:
        raise ApiError("BADREQUEST", detail="the body is neither JSON nor a form")
    return {**query, **body} if query else body


# Reading (and dropping) a moderately large refused body lets a proxy finish sending it and then
# read our answer; closing on a half-sent body makes nginx answer 502 instead.
DISCARD_MAX_BYTES = 1 << 20


def _discard_body(length: int) -> None:
    if length > DISCARD_MAX_BYTES:
        return
    stream = request.environ["wsgi.input"]
    while length > 0:
        chunk = stream.read(min(length, 65536))
        if not chunk:
            break
        length -= len(chunk)


def _op_of(fields: dict[str, Any]) -> str:
    op = fields.get("op")
    return op.strip().lower()[:32] if isinstance(op, str) else ""


def answer(body: dict[str, Any]) -> Response:
    """An API answer, with the headers every answer carries."""
    # A copy: werkzeug keeps a Headers object it is given, and every answer sets its own length.
    headers = services().answer_headers.copy()
    response = Response(json.dumps(body, separators=(",", ":")), mimetype="application/json", headers=headers)
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response


@bp.route("/", methods=["GET", "POST", "OPTIONS"])
@bp.route("/index.php", methods=["GET", "POST", "OPTIONS"])
@bp.route("/api.php", methods=["GET", "POST", "OPTIONS"])
def endpoint() -> Response:
    if request.method == "OPTIONS":
        return Response(status=204)
    if request.method == "GET":
        return redirect(services().config["server.redirect_url"], code=302)
    return handle_post()


def handle_post() -> Response:
    svc = services()
    op = ""
    try:
        fields = read_fields(svc.config["server.max_body_bytes"])
        op = _op_of(fields)
        g.op = op
        raw_op = fields.get("op")
        if raw_op is None or (isinstance(raw_op, str) and not raw_op.strip()):
            raise ApiError("NOOP")
        handler = OPS.get(op)
        if handler is None:
            raise ApiError("BADOP")
        body = envelope(op, handler(Fields(fields), client_ip(), svc))
    except ApiError as error:
        body = failure(op, error, message_text=svc.config["server.error_message_text"])
        g.error = error.code
        g.error_detail = error.detail
    g.result = body["result"]
    return answer(body)


def client_ip() -> str:
    # ProxyFix (configured by server.trusted_proxies) has already put the right address here.
    return request.remote_addr or "unknown"


def internal_error(exc: Exception) -> Response:
    """Any unexpected exception on a POST: logged with the request id, answered INTERNAL."""
    logger.error("unexpected error in request %s", g.get("request_id", "-"), exc_info=exc)
    op = g.get("op", "")
    g.result, g.error = "FAIL", "INTERNAL"
    return answer(failure(op, ApiError("INTERNAL"), message_text=services().config["server.error_message_text"]))


def before_request() -> None:
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else secrets.token_hex(16)


def after_request(response: Response) -> Response:
    svc = services()
    if "X-Request-ID" not in response.headers:  # answers made by answer() have them all already
        response.headers.extend(svc.answer_headers)
        response.headers["X-Request-ID"] = g.get("request_id", "")
    if request.method == "POST":
        if svc.metrics:
            svc.metrics.request(g.get("op", ""), g.get("result", "FAIL"), g.get("error", ""))
        if svc.config["logging.requests"]:
            log_request(response)
    return response


def log_request(response: Response) -> None:
    elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    op, result, error, request_id = g.get("op", ""), g.get("result", ""), g.get("error", ""), g.get("request_id", "")
    path, ip = request.path, client_ip()
    if services().config["logging.json"]:
        request_log.info(
            "%s op=%s result=%s error=%s",
            path,
            op,
            result,
            error,
            extra={
                "path": path,
                "op": op,
                "result": result,
                "error": error,
                "duration_ms": round(elapsed_ms, 1),
                "client_ip": ip,
                "request_id": request_id,
                "status": response.status_code,
            },
        )
    else:
        # One string, no arguments: the cheapest record to make, check for secrets and write.
        request_log.info(
            f"{path} op={op or '-'} result={result or '-'} error={error or '-'} ms={elapsed_ms:.1f} "
            f"ip={ip} id={request_id or '-'}"
        )
