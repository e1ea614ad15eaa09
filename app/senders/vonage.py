"""Vonage SMS API: POST https://rest.nexmo.com/sms/json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Message, SendError
from .http_base import HttpSender, require


class VonageSender(HttpSender):
    provider = "vonage"

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        require(config, "sender.vonage.api_key", "sender.vonage.api_secret", "sender.vonage.from")

    def send(self, message: Message) -> str:
        body = {
            "api_key": self.config["sender.vonage.api_key"],
            "api_secret": self.config["sender.vonage.api_secret"],
            "from": self.config["sender.vonage.from"],
            "to": message.address.lstrip("+"),
            "text": message.text,
        }
        response = self.post(self.config["sender.vonage.api_url"], json=body)
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
