"""Delivery receipts: the SMS provider tells whether a code arrived.

``POST /receipts/<sender>`` takes the configured sender's receipts - Twilio's status callbacks
(``X-Twilio-Signature`` checked against ``sender.twilio.status_callback_url``), Vonage's SMS delivery
receipts (signed with ``sender.vonage.signature_secret``) and the webhook sender's (signed as the
service signs its own webhooks, Standard Webhooks) - and records each final one against the message
id its send returned: an audit event (``delivered`` or ``undelivered``, for whom the message was sent
to, so ``status PHONE`` shows it) and ``messenger_deliveries_total``. An undelivered message counts
against its destination prefix for the automatic quarantine, when the receipt names the number and
that number is the one the message went to. Receipts from anyone else are refused (403); a sender
with no receipts configured answers 404.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request

from . import services as services_module
from .api import answer
from .auth.otp import CodeLogin
from .senders.base import Receipt
from .services import Services
from .store.audit import Event, EventName

logger = logging.getLogger("app.receipts")

bp = Blueprint("receipts", __name__)


@bp.post("/receipts/<provider>")
def receipt(provider: str) -> Response:
    svc = services_module.of(current_app)
    router = svc.login.kit.router  # with routes, any of their senders may have sent the message
    senders = [svc.sender, *(router.senders.values() if router else [])]
    read = next((getattr(s, "receipt", None) for s in senders if getattr(s, "provider", None) == provider), None)
    if read is None:
        return answer({"error": "Not Found", "status": 404}, 404)
    try:
        found = read(request.get_data(cache=True)[:65536], request.form.to_dict(), dict(request.headers), svc.now())
    except LookupError:  # this sender's receipts are not configured
        return answer({"error": "Not Found", "status": 404}, 404)
    except PermissionError as exc:
        logger.warning("refused a delivery receipt for %s from %s: %s", provider, request.remote_addr, exc)
        return answer({"error": "Forbidden", "status": 403}, 403)
    if found is None:  # a state on the way (queued, sent): nothing to record
        return Response(status=204)
    svc.metrics.delivery(provider, found.outcome)
    if svc.auditor.enabled and found.message_id:
        event = EventName.DELIVERED if found.outcome == "delivered" else EventName.UNDELIVERED
        detail = f"{provider} {found.code}".strip()
        made = svc.store.receipt(found.message_id, event, detail, svc.now(), svc.auditor.keep_seconds)
        if made is None:
            logger.info("a %s receipt for message %s that this service did not send", provider, found.message_id[:64])
        elif found.outcome == "undelivered":
            _count_undelivered(svc, found, made.subject)
    return Response(status=204)


def _count_undelivered(svc: Services, found: Receipt, subject: str) -> None:
    """Count an undelivered message against its prefix - only when the number the receipt names is
    the one the message went to (its audit subject), so a receipt cannot count against another."""
    login = svc.login
    if not found.to or not isinstance(login, CodeLogin):
        return
    address = login.normalize_address(found.to)
    watch = login.watch_of(address) if address and svc.auditor.subject(address) == subject else None
    if watch is None:
        return
    now = svc.now()
    if svc.store.undelivered(watch, now):
        logger.warning("prefix %s quarantined: many of its codes never arrived", watch.prefix)
        svc.metrics.quarantined("undelivered")
        svc.auditor.write(
            [
                Event(
                    now,
                    "",
                    "",
                    EventName.QUARANTINED,
                    f"{watch.prefix} undelivered",
                    svc.settings.auth.method,
                    "",
                    "",
                    "",
                )
            ]
        )
