"""Twilio Programmable Messaging: POST /2010-04-01/Accounts/{AccountSid}/Messages.json."""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import ConfigError, setting, url
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
        response = self.post(self.url, data=form, auth=self.auth)
        answer = self.json_of(response)
        if response.status_code not in (200, 201) or not answer.get("sid"):
            code = str(answer.get("code") or f"http-{response.status_code}")
            raise SendError(f"twilio refused the message: {answer.get('message', 'no details')}", provider_code=code)
        return str(answer["sid"])
