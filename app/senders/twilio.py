"""Twilio: SMS and WhatsApp through Programmable Messaging (POST .../Messages.json), a call that
reads the code through Programmable Voice (POST .../Calls.json with TwiML)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from xml.sax.saxutils import escape

import requests

from ..schema import ConfigError, optional_url, setting, url
from ..settings import SenderSettings
from .base import Message, Receipt, SendError
from .http_base import HttpSender, require


@dataclass(frozen=True)
class TwilioSettings:
    """Twilio (``[sender.twilio]``): https://www.twilio.com/docs/messaging/api/message-resource"""

    account_sid: str = setting("", "Twilio Account SID (AC...).")
    auth_token: str = setting("", "Twilio auth token (or API key secret). Secret.", secret=True)
    api_key_sid: str = setting("", "Optional Twilio API key SID (SK...) used instead of the account SID.")
    from_number: str = setting("", "Sender number in E.164 (+1...), or use messaging_service_sid.")
    messaging_service_sid: str = setting("", "Twilio Messaging Service SID (MG...).")
    api_url: str = setting("https://api.twilio.com", "Twilio API base URL.", check=url)
    status_callback_url: str = setting(
        "",
        "This service's public URL for delivery receipts, ending in "
        "/receipts/twilio (e.g. https://chat.example/receipts/twilio): each message "
        "then asks Twilio to report there, signed. Empty: no receipts.",
        check=optional_url,
    )
    signing_token: str = setting(
        "",
        "The account's auth token, when auth_token holds an API key's secret: Twilio "
        "signs receipts with the account's auth token. Secret.",
        secret=True,
    )
    whatsapp_from: str = setting("", "The WhatsApp sender (+1...; empty: from_number, or the messaging service).")
    whatsapp_content_sid: str = setting(
        "",
        "An approved WhatsApp authentication template (HX...; its variable {{1}} "
        "is the code); empty: the message text, which WhatsApp delivers only inside "
        "a 24-hour conversation.",
    )
    voice_from: str = setting("", "The number calls come from (empty: from_number).")

    def validate(self) -> None:
        require("sender.twilio", self, "account_sid", "auth_token")
        if not (self.from_number or self.messaging_service_sid):
            raise ConfigError(
                "sender.twilio.from_number", "set from_number or messaging_service_sid for sender 'twilio'"
            )


class TwilioSender(HttpSender):
    provider = "twilio"
    section = "sender.twilio"
    Settings = TwilioSettings
    channels = frozenset({"sms", "whatsapp", "voice"})

    options: TwilioSettings

    def __init__(self, options: TwilioSettings, common: SenderSettings):
        super().__init__(options, common)
        account = options.account_sid
        self.url = f"{options.api_url.rstrip('/')}/2010-04-01/Accounts/{account}/Messages.json"
        self.calls_url = f"{options.api_url.rstrip('/')}/2010-04-01/Accounts/{account}/Calls.json"
        # An API key (SK...) authenticates with its own SID; otherwise the account SID.
        self.auth = (options.api_key_sid or account, options.auth_token)

    def send(self, message: Message) -> str:
        options, to = self.options, "+" + message.address.lstrip("+")
        if message.channel == "voice":
            return self._call(message, to)
        form = {"To": to, "Body": message.text}
        if options.messaging_service_sid:
            form["MessagingServiceSid"] = options.messaging_service_sid
        else:
            form["From"] = options.from_number
        if message.channel == "whatsapp":
            form["To"] = "whatsapp:" + to
            if options.whatsapp_from or not options.messaging_service_sid:
                form["From"] = "whatsapp:" + (options.whatsapp_from or options.from_number)
            if options.whatsapp_content_sid:  # an approved template: WhatsApp's rule for codes
                del form["Body"]
                form["ContentSid"] = options.whatsapp_content_sid
                form["ContentVariables"] = json.dumps({"1": message.code})
        if options.status_callback_url:
            form["StatusCallback"] = options.status_callback_url
        return self._created(self.post(self.url, data=form, auth=self.auth), "message")

    def _call(self, message: Message, to: str) -> str:
        """A call that says the message (its text spells the code out) in its language."""
        say = f'<Say language="{voice_language(message.language)}">{escape(message.text)}</Say>'
        twiml = f'<Response>{say}<Pause length="1"/>{say}</Response>'
        form = {"To": to, "From": self.options.voice_from or self.options.from_number, "Twiml": twiml}
        return self._created(self.post(self.calls_url, data=form, auth=self.auth), "call")

    def _created(self, response: requests.Response, what: str) -> str:
        answer = self.json_of(response)
        if response.status_code not in (200, 201) or not answer.get("sid"):
            code = str(answer.get("code") or f"http-{response.status_code}")
            raise SendError(f"twilio refused the {what}: {answer.get('message', 'no details')}", provider_code=code)
        return str(answer["sid"])

    # -- delivery receipts (app.receipts) ---------------------------------------------------------

    # Twilio's final message states; the others (queued, sending, sent, ...) are on the way.
    OUTCOMES = {"delivered": "delivered", "read": "delivered", "undelivered": "undelivered", "failed": "undelivered"}

    def receipt(self, body: bytes, form: dict[str, str], headers: dict[str, str], now: int) -> Receipt | None:
        """(message id, outcome, provider code) of a status callback whose X-Twilio-Signature is right
        for the configured callback URL; raise PermissionError when it is not, LookupError when no
        callback URL is configured; None for a state on the way (nothing to record)."""
        url = self.options.status_callback_url
        if not url:
            raise LookupError("sender.twilio.status_callback_url is not set")
        signature = {name.lower(): value for name, value in headers.items()}.get("x-twilio-signature", "")
        token = self.options.signing_token or self.options.auth_token
        if not signature or not hmac.compare_digest(signature, twilio_signature(token, url, form)):
            raise PermissionError("the X-Twilio-Signature is not Twilio's")
        outcome = self.OUTCOMES.get(form.get("MessageStatus", ""))
        if not outcome:
            return None
        return Receipt(form.get("MessageSid", ""), outcome, form.get("ErrorCode", ""), form.get("To", ""))


def voice_language(tag: str) -> str:
    """The language a call speaks, as Twilio's <Say> and Vonage's talk name them (de-DE): a tag with
    a region as it is, a bare language with its likeliest region (CLDR), else en-US."""
    if not tag:
        return "en-US"
    language, _, region = tag.partition("-")
    if region and len(region) == 2:
        return f"{language}-{region.upper()}"
    from babel.core import get_global

    likely = str(get_global("likely_subtags").get(language, "")).split("_")
    return f"{language}-{likely[-1]}" if len(likely) > 1 and len(likely[-1]) == 2 else "en-US"


def twilio_signature(token: str, url: str, form: dict[str, str]) -> str:
    """Twilio's request signature: base64 of HMAC-SHA1, keyed with the auth token, over the URL Twilio
    called followed by every POST parameter, sorted by name, as name and value with no separator."""
    signed = url + "".join(name + form[name] for name in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()
