"""E-mail codes over SMTP, with STARTTLS or SSL and an optional login."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from ..cooperative import hang_up, within
from ..deadlines import remaining
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
    subject: str = setting("Your {app_name} verification code", "Subject; fields as in the template.", check=template)

    def validate(self) -> None:
        require("sender.smtp", self, "host", "from_address")


class SmtpSender(BaseSender):
    section = "sender.smtp"
    Settings = SmtpSettings
    channels = frozenset({"email", "sms"})  # sms: through an e-mail-to-SMS gateway, as some operators do
    options: SmtpSettings
    common: SenderSettings

    def _connect(self, held: list[smtplib.SMTP]) -> smtplib.SMTP:
        """A connection that has greeted us, kept in ``held`` from before it connects (the greeting
        is read while connecting, and a server that trickles it must be closed at the deadline)."""
        o = self.options
        # Certificates are always verified; an internal server's own CA can be named instead.
        context = ssl.create_default_context(cafile=o.ca_file or None)
        if o.security == "ssl":
            server: smtplib.SMTP = smtplib.SMTP_SSL(timeout=self.common.timeout, context=context)
        else:
            server = smtplib.SMTP(timeout=self.common.timeout)
        held.append(server)
        server._host = o.host  # type: ignore[attr-defined]  # what smtplib's constructor would set: TLS checks the certificate against it
        server.connect(o.host, o.port)
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
        held: list[smtplib.SMTP] = []

        def deliver() -> None:
            try:
                server = self._connect(held)
                if o.username:
                    server.login(o.username, o.password)
                server.send_message(mail)
                server.quit()
            except BaseException:
                for server in held:
                    server.close()  # never QUIT here: a server that trickles would hold that too
                raise

        def hang_up_all() -> None:  # past the deadline, from the waiting thread
            for server in held:
                hang_up(getattr(server, "sock", None))

        seconds = self.common.timeout
        try:
            seconds = remaining(seconds)
            # the whole exchange - name resolution, connect, every command - within the timeout
            within(seconds, deliver, on_timeout=hang_up_all)
        except smtplib.SMTPResponseException as exc:
            raise SendError(
                f"the SMTP server refused the e-mail ({exc.smtp_code})", provider_code=str(exc.smtp_code)
            ) from None
        except TimeoutError:
            raise SendError(f"the SMTP server did not answer within {seconds:g} s", provider_code="timeout") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"cannot deliver the e-mail ({type(exc).__name__})", provider_code="smtp") from None
        return message_id
