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

    def lockout(self, subject: str, ip: str) -> list[Rule]:
        """The failure lock-out, checked here and fed by wrong answers (``failures``).

        Two rules, so that wrong answers from one address lock out only that address for that
        subject, while guessing from all addresses together stays bounded (SECURITY.md).
        """
        s = self.settings
        return [
            Rule(f"fail-ip:{subject}:{ip}", s.failures_per_phone_per_ip_per_day, DAY, count=False),
            Rule(f"fail:{subject}", s.failures_per_phone_per_day, DAY, count=False),
        ]

    def failures(self, subject: str, ip: str) -> list[tuple[str, int]]:
        """The counters (key, window) a wrong answer for ``subject`` from ``ip`` adds to."""
        return [(f"fail-ip:{subject}:{ip}", DAY), (f"fail:{subject}", DAY)]

    def for_send(self, address: str, ip: str, *, test_number: bool = False, allowed: bool = False) -> list[Rule]:
        """Rules a code request must pass. Test numbers send nothing, so only the cooldown applies;
        a number on the operator's allow list skips the per-address cap."""
        s = self.settings
        cooldown = s.resend_cooldown_seconds
        rules = [*self.lockout(address, ip), Rule(f"cooldown:{address}", 1 if cooldown else 0, cooldown)]
        if not test_number:
            rules += [
                Rule(f"send:{address}", s.sends_per_phone_per_hour, HOUR),
                Rule("send-all", s.global_sends_per_hour, HOUR),
            ]
            if not allowed:
                rules.append(Rule(f"send-ip:{ip}", s.sends_per_ip_per_hour, HOUR))
        return rules

    def for_check(self, subject: str, ip: str, *, allowed: bool = False) -> list[Rule]:
        """Rules an answer (a code, a password) for ``subject`` from ``ip`` must pass (an allowed
        subject skips the per-address cap; the code's own attempts still hold)."""
        return [*self.lockout(subject, ip)] if allowed else [*self.lockout(subject, ip), self.per_address(ip)]

    def per_address(self, ip: str) -> Rule:
        """Proofs from one client address per 10 minutes (the one-step logins' only rule)."""
        return Rule(f"check-ip:{ip}", self.settings.checks_per_ip_per_10min, TEN_MINUTES)
