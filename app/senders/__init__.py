"""Senders deliver codes; one is chosen by name with ``sender.name``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..config import load_object
from .base import Message, Sender, SendError, render

__all__ = ["Message", "Sender", "SendError", "build_sender", "render"]


def _log(config):
    from .log import LogSender

    return LogSender(config)


def _memory(config):
    from .memory import MemorySender

    return MemorySender(config)


def _twilio(config):
    from .twilio import TwilioSender

    return TwilioSender(config)


def _vonage(config):
    from .vonage import VonageSender

    return VonageSender(config)


def _webhook(config):
    from .webhook import WebhookSender

    return WebhookSender(config)


def _smtp(config):
    from .smtp import SmtpSender

    return SmtpSender(config)


SENDERS: dict[str, Callable[[Mapping[str, Any]], Sender]] = {
    "log": _log,
    "memory": _memory,
    "twilio": _twilio,
    "vonage": _vonage,
    "webhook": _webhook,
    "smtp": _smtp,
}


def build_sender(config: Mapping[str, Any]) -> Sender:
    name = config["sender.name"]
    factory = SENDERS.get(name) or load_object(name, "sender.name")
    return factory(config)
