"""The ops the apps send, by name. Thin: the work is in auth/, mesibo and the store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .auth import LoginRequest
from .errors import ApiError
from .fields import Fields
from .mesibo import MesiboError
from .services import Services

logger = logging.getLogger("app.ops")


def login(fields: Fields, client_ip: str, services: Services) -> dict[str, Any]:
    appid = fields.text("appid", error="MISSINGAPPID")
    if not appid:
        raise ApiError("MISSINGAPPID")
    request = LoginRequest(fields, appid[:256], client_ip, services.now())
    method = services.auth
    if not method.is_proof(fields):
        answer = method.begin(request, services)
        services.tidy(request.now)
        return answer
    identity = method.prove(request, services)
    try:
        token = services.mesibo.add_user(
            identity.address,
            request.appid,
            name=identity.name,
            expiry_minutes=services.config["mesibo.token_expiry_minutes"],
        )
    except MesiboError as exc:
        identity.release()
        logger.warning("mesibo did not mint a token: %s", exc)
        raise ApiError(exc.code) from None
    except Exception:
        identity.release()
        raise
    return services.login_answer(identity.address, token)


def logout(fields: Fields, client_ip: str, services: Services) -> dict[str, Any]:
    if services.config["mesibo.revoke_on_logout"]:
        try:
            token = fields.text("token", error="BADREQUEST")
        except ApiError:
            token = ""
        if token:
            services.mesibo.revoke(token, services.config["mesibo.revoke_op"])
    return {}


OPS: dict[str, Callable[[Fields, str, Services], dict[str, Any]]] = {"login": login, "logout": logout}
