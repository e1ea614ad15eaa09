"""Vonage SMS API: POST https://rest.nexmo.com/sms/json."""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import setting, url
from .base import Message, SendError
from .http_base import HttpSender, require


@dataclass(frozen=True)
class VonageSettings:
    """Vonage (``[sender.vonage]``): https://developer.vonage.com/en/api/sms"""

    api_key: str = setting("", "Vonage API key.")
    api_secret: str = setting("", "Vonage API secret. Secret.", secret=True)
    from_: str = setting("", "Sender id: a number or an alphanumeric name.", name="from")
    api_url: str = setting("https://rest.nexmo.com/sms/json", "Vonage SMS API URL.", check=url)

    def validate(self) -> None:
        require("sender.vonage", self, "api_key", "api_secret", "from_")


class VonageSender(HttpSender):
    provider = "vonage"
    section = "sender.vonage"
    Settings = VonageSettings

    options: VonageSettings

    def send(self, message: Message) -> str:
        body = {
            "api_key": self.options.api_key,
            "api_secret": self.options.api_secret,
            "from": self.options.from_,
            "to": message.address.lstrip("+"),
            "text": message.text,
        }
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
