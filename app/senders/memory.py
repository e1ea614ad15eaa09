"""The test sender: keeps messages in an outbox in this process."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from .base import BaseSender, Message, SendError


class MemorySender(BaseSender):
    def __init__(self, options: Any = None, common: Any = None):
        super().__init__(options, common)
        self.outbox: list[Message] = []
        self.fail_next = 0
        self._lock = threading.Lock()

    def send(self, message: Message) -> str:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise SendError("memory sender told to fail", provider_code="TEST")
            self.outbox.append(message)
        return uuid.uuid4().hex

    def last_code(self, address: str) -> str | None:
        with self._lock:
            for message in reversed(self.outbox):
                if message.address == address:
                    return message.code
        return None
