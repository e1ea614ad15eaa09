"""The abuse limits as rules for the store: every rule the service applies is made here.

No Flask; the store does the counting atomically.
"""

from __future__ import annotations

from .settings import LimitSettings
from .store import Rule

HOUR = 3600
DAY = 86400
TEN_MINUTES = 600


class Limits:
    def __init__(self, settings: LimitSettings):
        self.settings = settings

    def lockout(self, subject: str) -> Rule:
        """Checked, not counted here: wrong answers feed it through ``failure``."""
        return Rule(f"fail:{subject}", self.settings.failures_per_phone_per_day, DAY, count=False)

    def failure(self, subject: str) -> tuple[str, int]:
        """The counter (key, window) a wrong answer for ``subject`` adds to."""
        return f"fail:{subject}", DAY

    def for_send(self, address: str, ip: str, *, test_number: bool = False) -> list[Rule]:
        """Rules a code request must pass. Test numbers send nothing, so only the cooldown applies."""
        s = self.settings
        cooldown = s.resend_cooldown_seconds
        rules = [self.lockout(address), Rule(f"cooldown:{address}", 1 if cooldown else 0, cooldown)]
        if not test_number:
            rules += [
                Rule(f"send:{address}", s.sends_per_phone_per_hour, HOUR),
                Rule(f"send-ip:{ip}", s.sends_per_ip_per_hour, HOUR),
                Rule("send-all", s.global_sends_per_hour, HOUR),
            ]
        return rules

    def for_check(self, subject: str, ip: str) -> list[Rule]:
        """Rules an answer (a code, a password) for ``subject`` from ``ip`` must pass."""
        return [self.lockout(subject), self.per_address(ip)]

    def per_address(self, ip: str) -> Rule:
        """Proofs from one client address per 10 minutes (the one-step logins' only rule)."""
        return Rule(f"check-ip:{ip}", self.settings.checks_per_ip_per_10min, TEN_MINUTES)
