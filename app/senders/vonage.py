"""Vonage: SMS through the SMS API (POST https://rest.nexmo.com/sms/json), WhatsApp through the
Messages API (POST https://api.nexmo.com/v1/messages), a call that reads the code through the Voice
API (POST https://api.nexmo.com/v1/calls, a talk action; authenticated with the application's JWT)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass

import jwt

from ..schema import ConfigError, one_of, optional_url, setting, url
from .base import Message, Receipt, SendError
from .http_base import HttpSender, require
from .twilio import voice_language


@dataclass(frozen=True)
class VonageSettings:
    """Vonage (``[sender.vonage]``): https://developer.vonage.com/en/api/sms"""

    api_key: str = setting("", "Vonage API key.")
    api_secret: str = setting("", "Vonage API secret. Secret.", secret=True)
    from_: str = setting("", "Sender id: a number or an alphanumeric name.", name="from")
    api_url: str = setting("https://rest.nexmo.com/sms/json", "Vonage SMS API URL.", check=url)
    messages_url: str = setting("https://api.nexmo.com/v1/messages", "Vonage Messages API URL (WhatsApp).", check=url)
    whatsapp_from: str = setting("", "Your WhatsApp Business number (digits), for the whatsapp channel.")
    voice_url: str = setting("https://api.nexmo.com/v1/calls", "Vonage Voice API URL.", check=url)
    voice_from: str = setting("", "The number calls come from (digits), for the voice channel.")
    application_id: str = setting("", "The Vonage application the Voice API calls belong to.")
    private_key: str = setting("", "That application's private key (PEM), which signs its JWTs. Secret.", secret=True)
    status_callback_url: str = setting(
        "",
        "This service's public URL for delivery receipts, ending in "
        "/receipts/vonage: each SMS then asks Vonage to report there (the SMS "
        "API's callback). Empty: the dashboard's delivery receipt URL, if any.",
        check=optional_url,
    )
    signature_secret: str = setting(
        "",
        "The account's signature secret: delivery receipts are accepted only "
        "when signed with it (Vonage signs webhooks once support enables it). "
        "Empty: no receipts. Secret.",
        secret=True,
    )
    signature_method: str = setting(
        "md5hash",
        "How Vonage signs: md5hash (its default), md5, sha1, sha256 or sha512 (the HMACs), as chosen in the dashboard.",
        check=one_of("md5hash", "md5", "sha1", "sha256", "sha512"),
    )

    def validate(self) -> None:
        require("sender.vonage", self, "api_key", "api_secret", "from_")
        if self.status_callback_url and not self.signature_secret:
            raise ConfigError(
                "sender.vonage.signature_secret",
                "is needed with status_callback_url: unsigned receipts would be anyone's",
            )


def vonage_signature(secret: str, method: str, params: dict[str, str]) -> str:
    """Vonage's signature of a request's parameters (``sig`` left out): every ``&name=value``, sorted
    by name, with ``&`` and ``=`` in values replaced by ``_``; then for ``md5hash`` the secret
    appended and MD5 taken, else an HMAC keyed with the secret. Lower-case hex."""
    signed = "".join(f"&{name}={str(params[name]).replace('&', '_').replace('=', '_')}" for name in sorted(params))
    if method == "md5hash":
        return hashlib.md5((signed + secret).encode(), usedforsecurity=False).hexdigest()
    return hmac.new(secret.encode(), signed.encode(), method).hexdigest()


class VonageSender(HttpSender):
    provider = "vonage"
    section = "sender.vonage"
    Settings = VonageSettings
    channels = frozenset({"sms", "whatsapp", "voice"})

    options: VonageSettings

    def send(self, message: Message) -> str:
        if message.channel == "whatsapp":
            return self._whatsapp(message)
        if message.channel == "voice":
            return self._call(message)
        body = {
            "api_key": self.options.api_key,
            "api_secret": self.options.api_secret,
            "from": self.options.from_,
            "to": message.address.lstrip("+"),
            "text": message.text,
        }
        if self.options.status_callback_url:
            body["callback"] = self.options.status_callback_url
        response = self.post(self.options.api_url, json=body)
        answer = self.json_of(response)
        messages = answer.get("messages") if isinstance(answer.get("messages"), list) else []
        if response.status_code != 200 or not messages:
            status = response.status_code
            raise SendError(f"vonage answered HTTP {status}", provider_code=f"http-{status}")
        first = messages[0] if isinstance(messages[0], dict) else {}
        # Vonage answers 200 for refused messages too; the status of each message is what counts.
        if str(first.get("status")) != "0":
            raise SendError(
                f"vonage refused the message: {first.get('error-text', 'no details')}",
                provider_code=str(first.get("status")),
            )
        return str(first.get("message-id", ""))

    def _needs(self, channel: str, *names: str) -> None:
        missing = [name for name in names if not getattr(self.options, name)]
        if missing:  # a definite refusal: the next sender of the route is tried
            raise SendError(
                f"vonage cannot send {channel}: sender.vonage.{missing[0]} is not set", provider_code="config"
            )

    def _whatsapp(self, message: Message) -> str:
        self._needs("whatsapp", "whatsapp_from")
        body = {
            "message_type": "text",
            "channel": "whatsapp",
            "to": message.address.lstrip("+"),
            "from": self.options.whatsapp_from,
            "text": message.text,
        }
        response = self.post(self.options.messages_url, json=body, auth=(self.options.api_key, self.options.api_secret))
        answer = self.json_of(response)
        if response.status_code != 202 or not answer.get("message_uuid"):
            code = str(answer.get("type", "")).rsplit("/", 1)[-1] or f"http-{response.status_code}"
            raise SendError(f"vonage refused the message: {answer.get('title', 'no details')}", provider_code=code)
        return str(answer["message_uuid"])

    def _call(self, message: Message) -> str:
        """A call whose talk action says the message (its text spells the code out) in its language."""
        self._needs("voice", "voice_from", "application_id", "private_key")
        now = int(time.time())
        token = jwt.encode(
            {"application_id": self.options.application_id, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
            self.options.private_key,
            algorithm="RS256",
        )
        body = {
            "to": [{"type": "phone", "number": message.address.lstrip("+")}],
            "from": {"type": "phone", "number": self.options.voice_from},
            "ncco": [{"action": "talk", "text": message.text, "language": voice_language(message.language)}],
        }
        response = self.post(self.options.voice_url, json=body, headers={"Authorization": f"Bearer {token}"})
        answer = self.json_of(response)
        if response.status_code not in (200, 201) or not answer.get("uuid"):
            raise SendError(
                f"vonage refused the call: {answer.get('title', 'no details')}",
                provider_code=f"http-{response.status_code}",
            )
        return str(answer["uuid"])

    # -- delivery receipts (app.receipts) ---------------------------------------------------------

    # the SMS API's final states; accepted, buffered and unknown are on the way (or never final)
    OUTCOMES = {"delivered": "delivered", "expired": "undelivered", "failed": "undelivered", "rejected": "undelivered"}
    TOLERANCE_SECONDS = 300  # a receipt signed longer ago than this is a replay

    def receipt(self, body: bytes, form: dict[str, str], headers: dict[str, str], now: int) -> Receipt | None:
        """A delivery receipt of the SMS API (POSTed as a form or as JSON), signed with the account's
        signature secret: its ``sig`` right for the other fields, its ``timestamp`` within five minutes
        of ``now`` and its ``api-key`` this account's - else PermissionError; LookupError when no
        signature secret is configured; None for a state on the way."""
        if not self.options.signature_secret:
            raise LookupError("sender.vonage.signature_secret is not set")
        params = dict(form) or _json_object(body)
        offered = str(params.pop("sig", "")).lower()
        expected = vonage_signature(self.options.signature_secret, self.options.signature_method, params)
        if not offered or not hmac.compare_digest(offered, expected):
            raise PermissionError("the receipt's sig is not Vonage's")
        stamp = str(params.get("timestamp", ""))
        if not stamp.isdigit() or abs(int(stamp) - now) > self.TOLERANCE_SECONDS:
            raise PermissionError("the receipt's timestamp is missing or stale")
        if str(params.get("api-key", "")) != self.options.api_key:
            raise PermissionError("the receipt is for another Vonage account")
        outcome = self.OUTCOMES.get(str(params.get("status", "")).lower())
        if not outcome:
            return None
        return Receipt(
            str(params.get("messageId", "")),
            outcome,
            str(params.get("err-code", ""))[:64],
            str(params.get("msisdn", ""))[:32],
        )


def _json_object(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # read before the signature is checked: anyone's bytes
        raise PermissionError("the receipt is neither a form nor JSON") from None
    if not isinstance(data, dict):
        raise PermissionError("the receipt is not a JSON object")
    return {str(name): value if isinstance(value, str) else json.dumps(value) for name, value in data.items()}
