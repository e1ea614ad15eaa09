"""The ops the apps send, by name, and the answers they need (contract section 3).

Thin: the login method proves who the user is, mesibo mints the token, the store keeps state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .audit import Audit
from .auth import LoginRequest
from .errors import ApiError
from .fields import Fields
from .mesibo import MesiboError
from .services import Services
from .settings import AppSettings, LoginSettings
from .store.audit import EventName

logger = logging.getLogger("app.ops")


def login(fields: Fields, client_ip: str, services: Services, audit: Audit) -> dict[str, Any]:
    appid = fields.text("appid", error="MISSINGAPPID")
    if not appid:
        raise ApiError("MISSINGAPPID")
    audit.appid = appid
    request = LoginRequest(fields, appid[:256], client_ip, services.now(), audit)
    method = services.login
    if not method.is_proof(fields):
        answer = {**method.begin(request), **notice(services.settings.login)}
        services.store.tidy(request.now)
        return answer
    identity = method.prove(request)
    try:
        token = method.mint(identity, request)
    except MesiboError as exc:
        identity.release()  # the proof was good: the user may try again with it
        audit.note(EventName.MESIBO_ERROR, f"{exc.code} {exc.upstream_error}".strip())
        logger.warning("mesibo did not mint a token: %s", exc)
        raise ApiError(exc.code, detail=str(exc)) from None
    except BaseException:
        identity.release()  # whatever stopped the mint, the proof was not spent on a token
        raise
    try:
        identity.consume()
    except Exception:
        # Answering OK now would hand out a token while the code lives on: once its claim lapsed it
        # would mint again. So the token goes to nobody (and is revoked at mesibo, best effort) and
        # the login fails; the code, still claimed, works again when the claim lapses.
        logger.error("a used code could not be marked used: the login fails and its token is revoked", exc_info=True)
        audit.note(EventName.REVOKED, "the code could not be marked used")
        services.mesibo.revoke(token, services.settings.mesibo.revoke_op)
        raise ApiError("INTERNAL", detail="the code could not be marked used") from None
    audit.note(EventName.MINTED)
    return login_answer(services.settings.app, identity.address, token)


def logout(fields: Fields, client_ip: str, services: Services, audit: Audit) -> dict[str, Any]:
    settings = services.settings.mesibo
    if settings.revoke_on_logout:
        try:
            token = fields.text("token", error="BADREQUEST")
        except ApiError:
            token = ""
        if token:
            services.mesibo.revoke(token, settings.revoke_op)
    return {}


def notice(settings: LoginSettings) -> dict[str, Any]:
    """The optional notice a successful step 1 carries."""
    if not settings.notice:
        return {}
    return {"title": settings.notice_title, "message": settings.notice_message, "delay": settings.notice_delay}


def login_answer(app: AppSettings, address: str, token: str) -> dict[str, Any]:
    """The fields of a successful login, with the types the apps parse (contract section 3)."""
    return {
        "token": token,
        "phone": address,
        "urls": {"upload": app.upload_url, "download": app.download_url},
        "share": {"text": app.invite_text, "subject": app.invite_subject, "title": app.invite_title},
        "invite": app.invite_text,
        "fileurl": app.fileurl,
        "downloadurl": app.downloadurl,
        "uploadurl": app.uploadurl,
        "uiconfig": app.uiconfig,
    }


OPS: dict[str, Callable[[Fields, str, Services, Audit], dict[str, Any]]] = {"login": login, "logout": logout}
