"""Delivery receipts: the SMS provider tells whether a code arrived.

``POST /receipts/<sender>`` takes the configured sender's receipts - Twilio's status callbacks
(``X-Twilio-Signature`` checked against ``sender.twilio.status_callback_url``) and the webhook
sender's (signed as the service signs its own webhooks, Standard Webhooks) - and records each final
one against the message id its send returned: an audit event (``delivered`` or ``undelivered``, for
whom the message was sent to, so ``status PHONE`` shows it) and ``messenger_deliveries_total``.
Receipts from anyone else are refused (403); a sender with no receipts configured answers 404.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request

from . import services as services_module
from .api import answer
from .store.audit import EventName

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
        found = read(request.get_data(cache=True)[:65536], request.form.to_dict(), dict(request.headers))
    except LookupError:  # this sender's receipts are not configured
        return answer({"error": "Not Found", "status": 404}, 404)
    except PermissionError as exc:
        logger.warning("refused a delivery receipt for %s from %s: %s", provider, request.remote_addr, exc)
        return answer({"error": "Forbidden", "status": 403}, 403)
    if found is None:  # a state on the way (queued, sent): nothing to record
        return Response(status=204)
    message_id, outcome, code = found
    svc.metrics.delivery(provider, outcome)
    if svc.auditor.enabled and message_id:
        event = EventName.DELIVERED if outcome == "delivered" else EventName.UNDELIVERED
        made = svc.store.receipt(message_id, event, f"{provider} {code}".strip(), svc.now(), svc.auditor.keep_seconds)
        if made is None:
            logger.info("a %s receipt for message %s that this service did not send", provider, message_id[:64])
    return Response(status=204)
