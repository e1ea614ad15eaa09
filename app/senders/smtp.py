"""E-mail codes over SMTP, with STARTTLS or SSL and an optional login."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from ..schema import between, one_of, setting, template
from ..settings import SenderSettings
from .base import BaseSender, Message, SendError
from .http_base import require


@dataclass(frozen=True)
class SmtpSettings:
    """E-mail codes over SMTP (``[sender.smtp]``)."""

    host: str = setting("localhost", "SMTP server.")
    port: int = setting(587, "SMTP port (587 STARTTLS, 465 SSL, 25 plain).", check=between(1, 65535))
    security: str = setting("starttls", "starttls, ssl or none.", check=one_of("starttls", "ssl", "none"))
    username: str = setting("", "SMTP login (empty: no login).")
    password: str = setting("", "SMTP password. Secret.", secret=True)
    ca_file: str = setting("", "CA bundle that signs the SMTP server's certificate (empty: the system's trusted CAs).")
    from_address: str = setting("", "From: address of code e-mails.")
    subject: str = setting("Your {app_name} verification code", "Subject; fields as in the template.",
                           check=template)

    def validate(self) -> None:
        require("sender.smtp", self, "host", "from_address")


class SmtpSender(BaseSender):
    section = "sender.smtp"
    Settings = SmtpSettings
    options: SmtpSettings
    common: SenderSettings

    def _connect(self) -> smtplib.SMTP:
        o = self.options
        # Certificates are always verified; an internal server's own CA can be named instead.
        context = ssl.create_default_context(cafile=o.ca_file or None)
        if o.security == "ssl":
            return smtplib.SMTP_SSL(o.host, o.port, timeout=self.common.timeout, context=context)
        server = smtplib.SMTP(o.host, o.port, timeout=self.common.timeout)
        if o.security == "starttls":
            server.starttls(context=context)
        return server

    def send(self, message: Message) -> str:
        o = self.options
        mail = EmailMessage()
        mail["From"] = o.from_address
        mail["To"] = message.address
        mail["Subject"] = o.subject.format(
            code=message.code, app_name=self.common.app_name, minutes=message.ttl_minutes
        )
        message_id = make_msgid(domain=o.from_address.rpartition("@")[2] or None)
        mail["Message-ID"] = message_id
        mail.set_content(message.text)
        try:
            with self._connect() as server:
                if o.username:
                    server.login(o.username, o.password)
                server.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            raise SendError(
                f"the SMTP server refused the e-mail ({exc.smtp_code})", provider_code=str(exc.smtp_code)
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"cannot deliver the e-mail ({type(exc).__name__})", provider_code="smtp") from None
        return message_id
