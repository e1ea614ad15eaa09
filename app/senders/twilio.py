"""Twilio Programmable Messaging: POST /2010-04-01/Accounts/{AccountSid}/Messages.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import ConfigError
from .base import Message, SendError
from .http_base import HttpSender, require


class TwilioSender(HttpSender):
    provider = "twilio"

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        require(config, "sender.twilio.account_sid", "sender.twilio.auth_token")
        if not (config["sender.twilio.from_number"] or config["sender.twilio.messaging_service_sid"]):
            raise ConfigError(
                "sender.twilio.from_number", "set from_number or messaging_service_sid for sender 'twilio'"
            )
        account = config["sender.twilio.account_sid"]
        self.url = f"{config['sender.twilio.api_url'].rstrip('/')}/2010-04-01/Accounts/{account}/Messages.json"
        # An API key (SK...) authenticates with its own SID; otherwise the account SID.
        self.auth = (config["sender.twilio.api_key_sid"] or account, config["sender.twilio.auth_token"])

    def send(self, message: Message) -> str:
        form = {"To": "+" + message.address.lstrip("+"), "Body": message.text}
        if self.config["sender.twilio.messaging_service_sid"]:
            form["MessagingServiceSid"] = self.config["sender.twilio.messaging_service_sid"]
        else:
            form["From"] = self.config["sender.twilio.from_number"]
        response = self.post(self.url, data=form, auth=self.auth)
        answer = self.json_of(response)
        if response.status_code not in (200, 201) or not answer.get("sid"):
            code = str(answer.get("code") or f"http-{response.status_code}")
            raise SendError(f"twilio refused the message: {answer.get('message', 'no details')}", provider_code=code)
        return str(answer["sid"])
