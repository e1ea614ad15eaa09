"""Webhook: POST the code to the operator's URL, signed as Standard Webhooks prescribe.

Headers: ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``). The secret is ``whsec_`` + the base64
of the key, as the specification serializes it - the form every Standard Webhooks library (the
reference ``standardwebhooks`` among them) takes; any other form is refused at start-up.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

from ..schema import ConfigError, optional_url, setting
from ..settings import SenderSettings
from .base import Message, Receipt, SendError
from .http_base import HttpSender, require


def signing_key(secret: str) -> bytes:
    how = "use whsec_ + the base64 of at least 24 random bytes: whsec_$(openssl rand -base64 32)"
    if not secret.startswith("whsec_"):
        raise ConfigError("sender.webhook.secret", f"is not a Standard Webhooks secret; {how}")
    encoded = secret[len("whsec_") :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ConfigError("sender.webhook.secret", f"is not base64 after whsec_; {how}") from None
    if len(key) < 24:
        raise ConfigError("sender.webhook.secret", f"holds a key of {len(key)} bytes; {how}")
    return key


@dataclass(frozen=True)
class WebhookSettings:
    """The webhook sender (``[sender.webhook]``), signed as https://www.standardwebhooks.com/ says."""

    url: str = setting("", "Where to POST codes for delivery.", check=optional_url)
    secret: str = setting("", "Signing secret: whsec_ + base64 of the key (Standard Webhooks). Secret.", secret=True)

    def validate(self) -> None:
        require("sender.webhook", self, "url", "secret")
        signing_key(self.secret)


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhookSender(HttpSender):
    provider = "webhook"
    section = "sender.webhook"
    Settings = WebhookSettings

    def __init__(self, options: WebhookSettings, common: SenderSettings):
        super().__init__(options, common)
        self.url = options.url
        self.key = signing_key(options.secret)

    def payload(self, message: Message) -> dict[str, Any]:
        now = message.created_at  # the service's clock, as every other time it writes
        return {
            "type": "login.code",
            "timestamp": dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z"),
            "data": {
                "channel": message.channel,
                "address": message.address,
                "code": message.code,
                "text": message.text,
                "expires_at": message.expires_at,
                "expires_in_minutes": message.ttl_minutes,
                "language": message.language,
            },
        }

    def send(self, message: Message) -> str:
        message_id = "msg_" + uuid.uuid4().hex
        timestamp = message.created_at
        body = json.dumps(self.payload(message), separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.key, message_id, timestamp, body),
        }
        response = self.post(self.url, data=body, headers=headers)
        if not 200 <= response.status_code < 300:
            status = response.status_code
            raise SendError(f"webhook answered HTTP {status}", provider_code=f"http-{status}")
        return message_id

    # -- delivery receipts (app.receipts) ---------------------------------------------------------

    TOLERANCE_SECONDS = 300  # a receipt signed longer ago than this is a replay

    def receipt(self, body: bytes, form: dict[str, str], headers: dict[str, str], now: int) -> Receipt | None:
        """A receipt the gateway POSTs back, signed as this sender signs its webhooks (same secret):
        JSON ``{"message_id": "msg_...", "status": "delivered" | "undelivered", "error": "...",
        "to": "+1..."}`` (``to`` optional). PermissionError when the signature is not ours or is stale
        (against the service's clock, ``now``); None for another status (on the way)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        receipt_id, stamp = lowered.get("webhook-id", ""), lowered.get("webhook-timestamp", "")
        if not stamp.isdigit() or abs(int(stamp) - now) > self.TOLERANCE_SECONDS:
            raise PermissionError("the receipt's webhook-timestamp is missing or stale")
        expected = sign(self.key, receipt_id, int(stamp), body)
        offered = lowered.get("webhook-signature", "").split()
        if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
            raise PermissionError("the receipt's webhook-signature is not ours")
        try:
            data = json.loads(body)
        except ValueError:
            raise PermissionError("the receipt is not JSON") from None
        status = data.get("status") if isinstance(data, dict) else None
        if status not in ("delivered", "undelivered"):
            return None
        return Receipt(
            str(data.get("message_id") or ""), status, str(data.get("error") or "")[:64], str(data.get("to") or "")[:32]
        )
