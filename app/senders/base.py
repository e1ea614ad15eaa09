"""The sender interface: deliver a code to an address and return the provider's message id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    address: str  # E.164 digits for SMS, an e-mail address for e-mail
    code: str
    text: str
    expires_at: int
    ttl_minutes: int
    channel: str = "sms"
    created_at: int = 0  # when the service made it (its clock): a sender's timestamps use this
    language: str = ""  # the BCP 47 tag of the text's language (lower case), when languages are configured


class SendError(Exception):
    """The provider did not take the message; ``provider_code`` is its own error code, if any.
    ``maybe_sent``: the request went out and no answer came (a timeout, a connection lost after
    sending) - the provider may have the message, so no other sender may be tried after it."""

    def __init__(self, message: str, *, provider_code: str = "", maybe_sent: bool = False):
        super().__init__(message)
        self.provider_code = provider_code
        self.maybe_sent = maybe_sent


@dataclass(frozen=True)
class Receipt:
    """A provider's final word on a message (app.receipts): ``outcome`` is ``delivered`` or
    ``undelivered``, ``code`` the provider's own status or error code, ``to`` the number the provider
    says it was for (E.164, when its receipts say; the automatic quarantine counts failures by it)."""

    message_id: str
    outcome: str
    code: str = ""
    to: str = ""


class Sender(Protocol):
    def send(self, message: Message) -> str:
        """Deliver ``message``; return the provider's message id or raise SendError."""
        ...


CHANNELS = ("sms", "whatsapp", "voice")


class BaseSender:
    """What every built-in sender keeps: its own settings (None when it declares none) and the
    ``[sender]`` section's (timeout, app name, message text). ``channels``: what it can deliver
    (the development senders and the webhook: anything)."""

    channels: frozenset[str] = frozenset({*CHANNELS, "email"})

    def __init__(self, options: Any, common: Any):
        self.options = options
        self.common = common


def render(
    template: str, *, code: str, app_name: str, minutes: int, retriever_hash: str = "", web_otp_domain: str = ""
) -> str:
    """The message text from the configured template, then the Android SMS Retriever hash, then the
    domain-bound code line browsers (WebOTP) and iOS read: ``@chat.example #123456``, always last."""
    text = template.format(code=code, app_name=app_name, minutes=minutes)
    if retriever_hash:
        text = f"{text}\n\n{retriever_hash}"
    if web_otp_domain:
        text = f"{text}{chr(10) if retriever_hash else chr(10) * 2}@{web_otp_domain} #{code}"
    return text
