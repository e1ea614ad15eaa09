"""E-mail codes over SMTP, with STARTTLS or SSL and an optional login."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from .base import Message, SendError
from .http_base import require


class SmtpSender:
    def __init__(self, config: Mapping[str, Any]):
        require(config, "sender.smtp.host", "sender.smtp.from_address")
        self.config = config

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        timeout = c["sender.timeout"]
        # Certificates are always verified; an internal server's own CA can be named instead.
        context = ssl.create_default_context(cafile=c["sender.smtp.ca_file"] or None)
        if c["sender.smtp.security"] == "ssl":
            return smtplib.SMTP_SSL(c["sender.smtp.host"], c["sender.smtp.port"], timeout=timeout, context=context)
        server = smtplib.SMTP(c["sender.smtp.host"], c["sender.smtp.port"], timeout=timeout)
        if c["sender.smtp.security"] == "starttls":
            server.starttls(context=context)
        return server

    def send(self, message: Message) -> str:
        c = self.config
        mail = EmailMessage()
        mail["From"] = c["sender.smtp.from_address"]
        mail["To"] = message.address
        mail["Subject"] = c["sender.smtp.subject"].format(
            code=message.code, app_name=c["sender.app_name"], minutes=message.ttl_minutes
        )
        message_id = make_msgid(domain=c["sender.smtp.from_address"].rpartition("@")[2] or None)
        mail["Message-ID"] = message_id
        mail.set_content(message.text)
        try:
            with self._connect() as server:
                if c["sender.smtp.username"]:
                    server.login(c["sender.smtp.username"], c["sender.smtp.password"])
                server.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            raise SendError(
                f"the SMTP server refused the e-mail ({exc.smtp_code})", provider_code=str(exc.smtp_code)
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"cannot deliver the e-mail ({type(exc).__name__})", provider_code="smtp") from None
        return message_id
