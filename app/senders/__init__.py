"""Senders deliver codes; one is chosen by name with ``sender.name``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import load_object
from .base import Message, Sender, SendError, render

__all__ = ["Message", "Sender", "SendError", "build_sender", "render"]


# The built-in senders by name; anything else is taken as module:Class. Imported only when chosen.
SENDERS = {
    "log": "app.senders.log:LogSender",
    "memory": "app.senders.memory:MemorySender",
    "twilio": "app.senders.twilio:TwilioSender",
    "vonage": "app.senders.vonage:VonageSender",
    "webhook": "app.senders.webhook:WebhookSender",
    "smtp": "app.senders.smtp:SmtpSender",
}


def build_sender(config: Mapping[str, Any]) -> Sender:
    name = config["sender.name"]
    return load_object(SENDERS.get(name, name), "sender.name")(config)
