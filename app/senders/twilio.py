"""Twilio Programmable Messaging: POST /2010-04-01/Accounts/{AccountSid}/Messages.json."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from ..schema import ConfigError, optional_url, setting, url
from ..settings import SenderSettings
from .base import Message, SendError
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
    status_callback_url: str = setting("", "This service's public URL for delivery receipts, ending in "
                                       "/receipts/twilio (e.g. https://chat.example/receipts/twilio): each message "
                                       "then asks Twilio to report there, signed. Empty: no receipts.",
                                       check=optional_url)
    signing_token: str = setting("", "The account's auth token, when auth_token holds an API key's secret: Twilio "
                                 "signs receipts with the account's auth token. Secret.", secret=True)

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

    options: TwilioSettings

    def __init__(self, options: TwilioSettings, common: SenderSettings):
        super().__init__(options, common)
        account = options.account_sid
        self.url = f"{options.api_url.rstrip('/')}/2010-04-01/Accounts/{account}/Messages.json"
        # An API key (SK...) authenticates with its own SID; otherwise the account SID.
        self.auth = (options.api_key_sid or account, options.auth_token)

    def send(self, message: Message) -> str:
        form = {"To": "+" + message.address.lstrip("+"), "Body": message.text}
        if self.options.messaging_service_sid:
            form["MessagingServiceSid"] = self.options.messaging_service_sid
        else:
            form["From"] = self.options.from_number
        if self.options.status_callback_url:
            form["StatusCallback"] = self.options.status_callback_url
        response = self.post(self.url, data=form, auth=self.auth)
        answer = self.json_of(response)
        if response.status_code not in (200, 201) or not answer.get("sid"):
            code = str(answer.get("code") or f"http-{response.status_code}")
            raise SendError(f"twilio refused the message: {answer.get('message', 'no details')}", provider_code=code)
        return str(answer["sid"])

    # -- delivery receipts (app.receipts) ---------------------------------------------------------

    # Twilio's final message states; the others (queued, sending, sent, ...) are on the way.
    OUTCOMES = {"delivered": "delivered", "read": "delivered", "undelivered": "undelivered", "failed": "undelivered"}

    def receipt(self, body: bytes, form: dict[str, str], headers: dict[str, str]) -> tuple[str, str, str] | None:
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
        return (form.get("MessageSid", ""), outcome, form.get("ErrorCode", "")) if outcome else None


def twilio_signature(token: str, url: str, form: dict[str, str]) -> str:
    """Twilio's request signature: base64 of HMAC-SHA1, keyed with the auth token, over the URL Twilio
    called followed by every POST parameter, sorted by name, as name and value with no separator."""
    signed = url + "".join(name + form[name] for name in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()).decode()
