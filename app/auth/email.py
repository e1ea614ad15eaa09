"""E-mail + one-time code: the same two steps as the phone login, with an ``email`` field."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from .otp import CodeLogin


class EmailLogin(CodeLogin):
    field = "email"
    invalid = "BADEMAIL"
    channel = "email"

    def normalize_address(self, raw: str) -> str | None:
        """A syntactically valid address (no DNS lookups on the login path), lower-cased so
        ``Ann@Example.com`` and ``ann@example.com`` are one mesibo user."""
        try:
            checked = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
        except EmailNotValidError:
            return None
        return checked.normalized.lower()
