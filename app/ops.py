"""The ops the apps send, by name, and the answers they need (contract section 3).

Thin: the login method proves who the user is, mesibo mints the token, the store keeps state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .audit import Audit
from .auth import DELETE_ACCOUNT, Identity, LoginRequest
from .errors import ApiError
from .fields import Fields
from .mesibo import MesiboError
from .services import Services
from .settings import AppSettings, LoginSettings
from .store import TokenRecord
from .store.audit import EventName

logger = logging.getLogger("app.ops")


def login(fields: Fields, client_ip: str, services: Services, audit: Audit) -> dict[str, Any]:
    request = login_request(fields, client_ip, services, audit)
    method = services.login
    if not method.is_proof(fields):
        answer = {**method.begin(request), **notice(services.settings.login)}
        services.store.tidy(request.now)
        return answer
    identity = method.prove(request)
    token = at_mesibo(identity, audit, lambda: method.mint(identity, request))
    settings = services.settings.mesibo
    minted = None  # the token's row, so that logout can revoke it (app.tokens)
    if settings.revoke_on_logout:
        minted = services.tokens.record(token, identity.address, request.appid, request.now)
    if identity.consume is None:  # no single-use proof: the token's row has a transaction of its own
        remember(services, minted)
    else:
        try:
            identity.consume(minted)
        except Exception:
            # Answering OK now would hand out a token while the code lives on: once its claim lapsed it
            # would mint again. So the token goes to nobody (revoked at mesibo, best effort) and the
            # login fails; the code, still claimed, works again when the claim lapses.
            logger.error(
                "a used code could not be marked used: the login fails and its token is revoked", exc_info=True
            )
            audit.note(EventName.REVOKED, "the code could not be marked used")
            services.mesibo.revoke(identity.address, request.appid, settings.revoke_op)
            raise ApiError("INTERNAL", detail="the code could not be marked used") from None
    audit.note(EventName.MINTED)
    return {**login_answer(services.settings.app, identity.address, token), **request.extra}


def deleteaccount(fields: Fields, client_ip: str, services: Services, audit: Audit) -> dict[str, Any]:
    """The user deletes their account, proving it is them as for a login (step 1 sends a code meant
    for this, step 2 answers it; or the one step of a password-style method): then mesibo deletes
    the user and the service erases what it holds about the address. mesibo refusing or unreachable
    erases nothing and leaves the proof usable for a retry, as for a login."""
    request = login_request(fields, client_ip, services, audit, DELETE_ACCOUNT)
    method = services.login
    if not method.is_proof(fields):
        return method.begin(request)
    identity = method.prove(request)
    at_mesibo(identity, audit, lambda: method.delete(identity, request))
    forget(services, identity.subject or identity.address, identity.address)
    # the trail keeps that an account was deleted, and nothing about whose it was
    audit.address, audit.client_ip, audit.noted = "", "", [(EventName.DELETED, type(method).__name__, "")]
    return {}


def forget(services: Services, subject: str, address: str) -> int:
    """Erase what the service holds about an account: its codes, its limit counters (the lock-outs,
    the caps, the mark of a returning user), its audit trail and this process's unwritten part of it
    and refusal hints. The operator's block and allow lists stay: they are the operator's, not the
    account's. Returns how many rows went."""
    keys, patterns = services.limits.keys_of_subject(subject)
    marks, marked = services.limits.marks_of_subject(subject)
    trail = [services.auditor.subject(name) for name in {subject, address}]
    services.auditor.forget(trail)
    return services.store.erase(services.codes.blind(address), [*keys, *marks], [*patterns, *marked], trail)


def login_request(
    fields: Fields, client_ip: str, services: Services, audit: Audit, purpose: str = "login"
) -> LoginRequest:
    """The request's app id checked (MISSINGAPPID; BADAPPID when the deployment serves a list of
    them and it is not on it, or it holds control characters) - before any work."""
    appid = fields.text("appid", error="MISSINGAPPID")
    if not appid:
        raise ApiError("MISSINGAPPID")
    served = services.settings.server.appids
    if (served and appid not in served) or not appid.isprintable():
        raise ApiError("BADAPPID", detail=f"appid {appid[:64]!r} is not served here")
    audit.appid = appid
    return LoginRequest(fields, appid[:256], client_ip, services.now(), audit, purpose)


def at_mesibo(identity: Identity, audit: Audit, call: Callable[[], Any]) -> Any:
    """Do what the proof was for at mesibo (mint a token, delete the user): when it fails, the proof
    is released - the user may try again with it - and mesibo's failure answered."""
    try:
        return call()
    except MesiboError as exc:
        identity.release()  # the proof was good: the user may try again with it
        audit.note(EventName.MESIBO_ERROR, f"{exc.code} {exc.upstream_error}".strip())
        logger.warning("mesibo failed: %s", exc)
        raise ApiError(exc.code, detail=str(exc)) from None
    except BaseException:
        identity.release()  # whatever stopped it, the proof was not spent
        raise


def remember(services: Services, minted: TokenRecord | None) -> None:
    """Keep a minted token's row for logout - best effort: the login happened either way."""
    if minted is None:
        return
    try:
        services.store.remember_token(minted)
    except Exception:
        logger.warning("could not keep the minted token for logout: logging out will not revoke it", exc_info=True)


def logout(fields: Fields, client_ip: str, services: Services, audit: Audit) -> dict[str, Any]:
    """Always OK (the apps log out locally only on OK). With ``mesibo.revoke_on_logout`` a token this
    service minted is revoked at mesibo, best effort: its row names the user to the token's holder
    (app.tokens), and mesibo removes the user's tokens for that app by address."""
    settings = services.settings.mesibo
    try:
        token = fields.text("token", error="BADREQUEST")
    except ApiError:
        token = ""
    if not (settings.revoke_on_logout and token):
        return {}
    try:
        found = services.store.take_token(services.tokens.lookup(token), services.now())
    except Exception:
        logger.warning("could not look up the token to revoke on logout", exc_info=True)
        return {}
    owner = services.tokens.owner(token, *found) if found else None
    if owner and found:
        audit.address = owner
        revoked = services.mesibo.revoke(owner, found[1], settings.revoke_op)
        audit.note(EventName.REVOKED, "logout" if revoked else "logout; mesibo did not confirm")
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


OPS: dict[str, Callable[[Fields, str, Services, Audit], dict[str, Any]]] = {
    "login": login,
    "logout": logout,
    "deleteaccount": deleteaccount,
}
