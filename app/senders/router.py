"""Which senders deliver a channel, in order, and the failover between them.

``sender.routes`` names, per channel, the senders to try in order (default: ``sender.name`` for
every channel). The next one is tried only after a definite refusal - the provider said no, or the
connection never opened - never after a send the provider may have taken (a timeout once the
request went out), so nobody gets two messages.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..schema import ConfigError
from .base import CHANNELS, Message, Sender, SendError


def channels_problem(value: list) -> str | None:
    wrong = [channel for channel in value if channel not in CHANNELS]
    return f"{wrong} are not channels ({', '.join(CHANNELS)})" if wrong or not value else None


def routes_problem(value: dict) -> str | None:
    for channel, names in value.items():
        if channels_problem([channel]) or not isinstance(names, list) or not names:
            return f"{channel!r}: a channel ({', '.join(CHANNELS)}) and a list of sender names"
    return None


def routed_names(raw: Any) -> list[str]:
    """The sender names a raw sender.routes value lists (a table, or JSON from the environment),
    read before the rest of the configuration: their sections must be known."""
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            raw = json.loads(raw)
    names = [n for names in raw.values() if isinstance(names, list) for n in names] if isinstance(raw, dict) else []
    return list(dict.fromkeys(str(name) for name in names))


def check_channels(sender: Any, sender_cls: type, routed: Mapping[str, type]) -> None:
    """Every channel the apps may ask for has a route whose senders can all deliver it."""
    for channel in sender.channels:
        for name in sender.routes.get(channel) or [sender.name]:
            cls = routed.get(name, sender_cls)
            if channel not in getattr(cls, "channels", {"sms", "email"}):
                raise ConfigError(
                    "sender.routes" if channel in sender.routes else "sender.channels",
                    f"sender {name!r} cannot deliver {channel}",
                )


@dataclass
class Delivery:
    """What became of a message: the sender that took it and its message id, and each refusal before."""

    sender: str = ""
    message_id: str = ""
    refused: list[tuple[str, SendError]] = field(default_factory=list)


class Router:
    def __init__(self, senders: Mapping[str, Sender], routes: Mapping[str, list[str]], default: str):
        self.senders = dict(senders)
        self.routes = {channel: list(names) for channel, names in routes.items()}
        self.default = default

    def route(self, channel: str) -> list[str]:
        return self.routes.get(channel) or [self.default]

    def send(self, message: Message) -> Delivery:
        """Deliver through the channel's senders in order; SendError (with ``delivery``: the
        attempts) when none took it."""
        delivery = Delivery()
        for name in self.route(message.channel):
            try:
                delivery.message_id = self.senders[name].send(message)
            except SendError as refused:
                delivery.refused.append((name, refused))
                if refused.maybe_sent:
                    break  # the provider may have it: another sender could make it two messages
                continue
            delivery.sender = name
            return delivery
        raise UndeliveredError(delivery)


class UndeliveredError(SendError):
    """No sender of the route took the message; ``delivery`` holds each refusal, the last one's
    code and whether it may have been sent."""

    def __init__(self, delivery: Delivery):
        last = delivery.refused[-1][1]
        super().__init__(str(last), provider_code=last.provider_code, maybe_sent=last.maybe_sent)
        self.delivery = delivery
