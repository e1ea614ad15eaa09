"""A custom sender, loaded by tests from configuration as ``plugins:ListSender``."""

from __future__ import annotations

SENT: list = []


class ListSender:
    def __init__(self, config):
        self.prefix = config.get("sender.list.prefix", "")

    def send(self, message) -> str:
        SENT.append((self.prefix, message))
        return f"list-{len(SENT)}"
