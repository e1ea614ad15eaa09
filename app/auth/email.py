"""E-mail + one-time code: the same two steps as the phone login, with an ``email`` field."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from ..schema import setting
from . import LoginKit
from .otp import CodeLogin


@dataclass(frozen=True)
class EmailSettings:
    """The e-mail login (``[auth.email]``), with ``auth.method = "email"``."""

    ignore_dots_at: list[str] = setting(
        ["gmail.com", "googlemail.com"],
        "Domains whose mailboxes ignore dots in "
        "the name (a.n.n@ and ann@ are one inbox): the limits count them as one.",
    )


class EmailLogin(CodeLogin):
    field = "email"
    invalid = "BADEMAIL"
    channel = "email"
    section = "auth.email"
    Settings = EmailSettings

    def __init__(self, options: EmailSettings, kit: LoginKit):
        super().__init__(options, kit)
        self.dotless = frozenset(domain.lower() for domain in options.ignore_dots_at)

    def normalize_address(self, raw: str) -> str | None:
        """A syntactically valid address (no DNS lookups on the login path), lower-cased so
        ``Ann@Example.com`` and ``ann@example.com`` are one mesibo user."""
        try:
            checked = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
        except EmailNotValidError:
            return None
        return checked.normalized.lower()

    def limit_subject(self, address: str) -> str:
        """The inbox an address reaches: ``ann+promo@`` and ``ann@`` are one (sub-addressing, which
        every large provider delivers), and so are ``a.n.n@`` and ``ann@`` at the domains that ignore
        dots - so the cooldown and the caps count the inbox, not each spelling of it (35 codes
        reached one inbox in seconds through +tags)."""
        name, _, domain = address.rpartition("@")
        name = name.split("+", 1)[0] or name
        if domain in self.dotless:
            name = name.replace(".", "")
        return f"{name}@{domain}"
