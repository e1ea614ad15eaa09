"""The development sender: writes the code to the log, as the PHP original did."""

from __future__ import annotations

import logging
import uuid

from .base import BaseSender, Message

logger = logging.getLogger("app.senders.log")


class LogSender(BaseSender):
    def send(self, message: Message) -> str:
        message_id = uuid.uuid4().hex
        # The one log line that carries a code, on purpose: "check the log for the OTP".
        logger.info("login code for %s: %s (expires in %d min)", message.address, message.code, message.ttl_minutes)
        return message_id
