"""The audit trail: what happened to each login, kept so an operator can look a user up - without
keeping addresses in clear (a keyed hash to find one, a masked form to show it), codes or tokens."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from .settings import AuditSettings
from .store.audit import Event


def masked(address: str) -> str:
    """A form of the address to show, not to know: ``18005551234`` -> ``1800•••••34``,
    ``ann@example.org`` -> ``a••@example.org``."""
    if not address:
        return ""
    name, at, domain = address.partition("@")
    if at:
        return name[:1] + "•" * max(2, len(name) - 1) + "@" + domain
    keep = 4 if len(address) > 8 else 1
    return address[:keep] + "•" * max(2, len(address) - keep - 2) + address[-2:]


class Auditor:
    """Turns a request's noted events into rows; the key makes the lookup hash useless without it."""

    def __init__(self, key: bytes, settings: AuditSettings):
        self._key = hmac.new(key, b"messenger-backend audit trail", hashlib.sha256).digest()
        self.enabled = settings.enabled
        self.keep_seconds = settings.retention_days * 86400

    def subject(self, address: str) -> str:
        """The lookup key of an address: the same for every request and node, not reversible."""
        return hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()[:32] if address else ""


@dataclass
class Audit:
    """The events of one request, written together when it ends (one statement)."""

    method: str
    client_ip: str = ""
    request_id: str = ""
    appid: str = ""
    address: str = ""  # who the request is about, once the login method knows
    noted: list[tuple[str, str]] = field(default_factory=list)

    def note(self, event: str, detail: str = "") -> None:
        self.noted.append((event, detail))

    def rows(self, auditor: Auditor, now: int) -> list[Event]:
        subject, shown = auditor.subject(self.address), masked(self.address)
        return [
            Event(now, subject, shown, event, detail[:200], self.method, self.appid[:256], self.client_ip,
                  self.request_id)
            for event, detail in self.noted
        ]
