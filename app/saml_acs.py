"""The SAML endpoints of the identity provider's browser round trip (app.auth.saml): its sign-in
answer, ``POST /saml/acs``, and this service's metadata for the provider, ``GET /saml/metadata``.
Both answer 404 unless ``auth.method = "saml"``."""

from __future__ import annotations

import logging
import urllib.parse

from flask import Blueprint, Response, current_app, request

from . import services as services_module
from .api import answer

logger = logging.getLogger("app.saml")

bp = Blueprint("saml", __name__)


def _method():
    from .auth.saml import SamlLogin

    method = services_module.of(current_app).login
    return method if isinstance(method, SamlLogin) else None


@bp.post("/saml/acs")
def acs() -> Response:
    method = _method()
    if method is None:
        return answer({"error": "Not Found", "status": 404}, 404)
    try:
        code = method.assertion(request.form.get("SAMLResponse", ""), services_module.of(current_app).now())
    except PermissionError as exc:
        logger.warning("refused a SAML response from %s: %s", request.remote_addr, exc)
        return answer({"error": "Forbidden", "status": 403, "detail": str(exc)[:200]}, 403)
    target = method.options.return_url
    location = f"{target}{'&' if '?' in target else '?'}{urllib.parse.urlencode({'code': code})}"
    return Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


@bp.get("/saml/metadata")
def metadata() -> Response:
    method = _method()
    if method is None:
        return answer({"error": "Not Found", "status": 404}, 404)
    return Response(method.metadata(), mimetype="application/samlmetadata+xml")
