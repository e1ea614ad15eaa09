"""The one endpoint: read the body (JSON, relaxed JSON, form, query), dispatch on op, answer the envelope.

Also the one place that turns a failure - the contract's ApiError, a limit's refusal, an HTTP error
werkzeug raised while reading the request, or any unexpected exception - into the envelope.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, redirect, request
from werkzeug.exceptions import HTTPException

from . import services as services_module
from .audit import Audit
from .body import read_fields
from .cors import Cors
from .deadlines import deadline
from .errors import ApiError, envelope, failure
from .fields import Fields
from .logs import printable
from .ops import OPS
from .store import Refused
from .store.audit import EventName

bp = Blueprint("api", __name__)
logger = logging.getLogger("app.api")
request_log = logging.getLogger("app.requests")


def _op_of(fields: dict[str, Any]) -> str:
    op = fields.get("op")
    return op.strip().lower()[:32] if isinstance(op, str) else ""


class AnswerHeaders:
    """WSGI middleware: the headers every answer carries (contract section 1) - no-cache, CORS, the
    allowed origin for this request's Origin - and the request id (the client's X-Request-ID when it
    is sane, else a new one, left in the environ as ``messenger.request_id``). Added as a plain list
    at ``start_response``: building them as werkzeug Headers on every answer cost more than the
    rest of an unknown op's answer."""

    def __init__(self, wsgi_app: Any, cors: Cors):
        self.wsgi_app = wsgi_app
        self.cors = cors
        self.fixed = [
            ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Pragma", "no-cache"),
            ("Expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
            *cors.headers,
        ]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else secrets.token_hex(16)
        environ[REQUEST_ID] = request_id
        extra = [*self.fixed, *self.cors.for_origin(environ.get("HTTP_ORIGIN")), ("X-Request-ID", request_id)]

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, headers + extra, exc_info)

        return self.wsgi_app(environ, start)


REQUEST_ID = "messenger.request_id"


def answer(body: dict[str, Any], status: int = 200) -> Response:
    """An API answer (AnswerHeaders adds the headers every answer carries)."""
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")


@bp.route("/", methods=["GET", "POST", "OPTIONS"])
@bp.route("/index.php", methods=["GET", "POST", "OPTIONS"])
@bp.route("/api.php", methods=["GET", "POST", "OPTIONS"])
def endpoint() -> Response:
    if request.method == "OPTIONS":
        return Response(status=204)
    if request.method == "GET":
        return redirect(services_module.of(current_app).settings.server.redirect_url, code=302)  # type: ignore[return-value]
    return handle_post()


def handle_post() -> Response:
    svc = services_module.of(current_app)
    ctx = g._get_current_object()  # one context look-up instead of one per attribute
    try:
        fields = read_fields(svc.settings.server.max_body_bytes)
        op = ctx.op = _op_of(fields)
        raw_op = fields.get("op")
        if raw_op is None or (isinstance(raw_op, str) and not raw_op.strip()):
            raise ApiError("NOOP")
        if svc.cors.refuses(request.headers.get("Origin"), request.headers.get("Sec-Fetch-Site")):
            raise ApiError("BADORIGIN", detail=f"origin {printable(request.headers.get('Origin', '-'))[:100]}")
        handler = OPS.get(op)
        if handler is None:
            raise ApiError("BADOP")
        ip = client_ip()
        ctx.audit = Audit(method=svc.settings.auth.method, client_ip=ip, request_id=ctx.request_id)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "negotiate" and token.strip() and "negotiate" not in fields:
            fields["negotiate"] = token.strip()  # SPNEGO's header, for the Kerberos login
        # every outbound HTTP call of the request ends within what is left of the request's deadline
        with deadline(svc.settings.server.request_deadline_seconds):
            body = envelope(op, handler(Fields(fields), ip, svc, ctx.audit), now=svc.clock())
    # the contract's failures are answered here, without Flask's exception machinery (a flood of
    # refusals is the path that must cost least); anything else goes to the handlers below
    except ApiError as error:
        return _fail(error)
    except Refused as refusal:
        return _refused(refusal)
    ctx.result = body["result"]
    response = answer(body)
    if "negotiate" in body:  # Kerberos mutual authentication: the service's token, as SPNEGO sends it
        response.headers["WWW-Authenticate"] = f"Negotiate {body['negotiate']}"
    return response


def client_ip() -> str:
    # ProxyFix (configured by server.trusted_proxies) has already put the right address here.
    return request.remote_addr or "unknown"


# -- the one error path ---------------------------------------------------------------------------


def _fail(error: ApiError, status: int = 200) -> Response:
    ctx = g._get_current_object()
    ctx.result, ctx.error, ctx.error_detail = "FAIL", error.code, error.detail
    svc = services_module.of(current_app)
    body = failure(ctx.get("op", ""), error, now=svc.clock(), message_text=svc.settings.server.error_message_text)
    response = answer(body, error.http_status if status == 200 else status)
    response.headers.update(error.headers)
    return response


def _refused(refusal: Refused) -> Response:
    # DEBUG: a flood makes thousands of these; the request line already says RATELIMIT.
    logger.debug("limit %s refused a request (retry after %ds)", refusal.kind, refusal.retry_after)
    services_module.of(current_app).metrics.refusal(refusal.kind)
    if "audit" in g:
        g.audit.note(EventName.REFUSED, f"{refusal.kind} retry_after={refusal.retry_after}")
    return _fail(ApiError("RATELIMIT", retry_after=refusal.retry_after, detail=f"limit {refusal.kind}"))


def _http_error(exc: HTTPException) -> Response:
    """POSTs always get the envelope; other methods keep the HTTP error, as JSON."""
    status = exc.code or 400
    if request.method == "POST":
        # An over-long body is the contract's BADREQUEST with 200, as the apps expect.
        response = _fail(ApiError("BADREQUEST", detail=exc.name.lower()), 200 if status == 413 else status)
    else:
        response = answer({"error": exc.name, "status": status}, status)
    allow = exc.get_response().headers.get("Allow")  # a 405 must say what is allowed
    if allow:
        response.headers["Allow"] = allow
    return response


def _internal_error(exc: Exception) -> Response:
    """Any unexpected exception: logged with the request id, answered INTERNAL."""
    logger.error("unexpected error in request %s", g.get("request_id", "-"), exc_info=exc)
    return _fail(ApiError("INTERNAL", detail=type(exc).__name__))


# -- around every request ------------------------------------------------------------------------


def before_request() -> None:
    ctx = g._get_current_object()
    ctx.started = time.perf_counter()
    # set by AnswerHeaders (a test may call the Flask app without it)
    ctx.request_id = request.environ.get(REQUEST_ID) or secrets.token_hex(16)


def after_request(response: Response) -> Response:
    if request.method == "POST":
        svc = services_module.of(current_app)
        ctx = g._get_current_object()
        svc.metrics.request(ctx.get("op", ""), ctx.get("result", "FAIL"), ctx.get("error", ""))
        if "audit" in ctx and ctx.audit.noted and svc.auditor.enabled:
            _record(svc, ctx.audit)
        if svc.settings.logging.requests:
            log_request(response, svc.settings.logging.json, ctx)
    return response


def _record(svc: services_module.Services, audit: Audit) -> None:
    try:
        svc.auditor.write(audit.rows(svc.auditor, svc.now()))
    except Exception:  # the audit trail must never fail a login that happened
        logger.warning("could not write the audit trail of request %s", audit.request_id, exc_info=True)


def log_request(response: Response, as_json: bool, ctx: Any) -> None:
    elapsed_ms = (time.perf_counter() - ctx.get("started", time.perf_counter())) * 1000
    op, result, error = printable(ctx.get("op", "")), ctx.get("result", ""), ctx.get("error", "")
    detail, request_id = printable(ctx.get("error_detail", "")), ctx.get("request_id", "")
    path, ip = printable(request.path), printable(client_ip())
    if as_json:
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
                "detail": detail,
                "duration_ms": round(elapsed_ms, 1),
                "client_ip": ip,
                "request_id": request_id,
                "status": response.status_code,
            },
        )
    else:
        # One string, no arguments: the cheapest record to make, check for secrets and write.
        why = f" detail={detail!r}" if detail else ""
        request_log.info(
            f"{path} op={op or '-'} result={result or '-'} error={error or '-'}{why} ms={elapsed_ms:.1f} "
            f"ip={ip} id={request_id or '-'}"
        )


def init_app(app: Flask, cors: Cors) -> None:
    app.wsgi_app = AnswerHeaders(app.wsgi_app, cors)  # type: ignore[method-assign]
    app.register_blueprint(bp)
    app.before_request(before_request)
    app.after_request(after_request)
    app.register_error_handler(ApiError, _fail)
    app.register_error_handler(Refused, _refused)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
