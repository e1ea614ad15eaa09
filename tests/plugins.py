"""A custom sender with a section of its own, loaded by tests from configuration as ``plugins:ListSender``."""

from __future__ import annotations

from dataclasses import dataclass

from app.schema import setting

SENT: list = []


@dataclass(frozen=True)
class ListSettings:
    prefix: str = setting("", "A prefix for the message ids.")


class ListSender:
    section = "sender.list"
    Settings = ListSettings

    def __init__(self, options: ListSettings, common):
        self.prefix = options.prefix

    def send(self, message) -> str:
        SENT.append((self.prefix, message))
        return f"{self.prefix}list-{len(SENT)}"
