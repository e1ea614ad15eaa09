"""The abuse limits as rules for the store: every rule the service applies is made here - its
counter's key, its cap and its window - and the support commands read them from here too.

No Flask; the store does the counting atomically.
"""

from __future__ import annotations

from .settings import LimitSettings
from .store import Rule

HOUR = 3600
DAY = 86400
TEN_MINUTES = 600

# Each rule's counter key is KIND:subject (KIND:subject:ip for the per-address lock-out).
COOLDOWN, SEND, SEND_ALL, SEND_IP, CHECK_IP, FAIL, FAIL_IP = (
    "cooldown", "send", "send-all", "send-ip", "check-ip", "fail", "fail-ip"
)


def key(kind: str, *parts: str) -> str:
    return ":".join((kind, *parts))


class Limits:
    def __init__(self, settings: LimitSettings):
        self.settings = settings

    def caps(self) -> dict[str, int]:
        """Each kind of rule's cap (0: off), as ``status`` shows it."""
        s = self.settings
        return {
            COOLDOWN: 1 if s.resend_cooldown_seconds else 0,
            SEND: s.sends_per_phone_per_hour,
            SEND_ALL: s.global_sends_per_hour,
            SEND_IP: s.sends_per_ip_per_hour,
            CHECK_IP: s.checks_per_ip_per_10min,
            FAIL: s.failures_per_phone_per_day,
            FAIL_IP: s.failures_per_phone_per_ip_per_day,
        }

    @staticmethod
    def keys_of_subject(subject: str) -> tuple[list[str], list[str]]:
        """The counters about one phone, address or user (keys, and LIKE patterns), for ``status``
        and ``unblock``."""
        return [key(COOLDOWN, subject), key(SEND, subject), key(FAIL, subject)], [key(FAIL_IP, subject, "%")]

    @staticmethod
    def keys_of_ip(ip: str) -> tuple[list[str], list[str]]:
        """The counters about one client address (keys, and LIKE patterns)."""
        return [key(SEND_IP, ip), key(CHECK_IP, ip)], [key(FAIL_IP, "%", ip)]

    def lockout(self, subject: str, ip: str) -> list[Rule]:
        """The failure lock-out, checked here and fed by wrong answers (``failures``).

        Two rules, so that wrong answers from one address lock out only that address for that
        subject, while guessing from all addresses together stays bounded (SECURITY.md).
        """
        s = self.settings
        return [
            Rule(key(FAIL_IP, subject, ip), s.failures_per_phone_per_ip_per_day, DAY, count=False),
            Rule(key(FAIL, subject), s.failures_per_phone_per_day, DAY, count=False),
        ]

    def failures(self, subject: str, ip: str) -> list[tuple[str, int]]:
        """The counters (key, window) a wrong answer for ``subject`` from ``ip`` adds to."""
        return [(rule.key, rule.window) for rule in self.lockout(subject, ip)]

    def for_send(self, address: str, ip: str, *, test_number: bool = False, allowed: bool = False) -> list[Rule]:
        """Rules a code request must pass. Test numbers send nothing, so only the cooldown applies;
        a number on the operator's allow list skips the per-address cap."""
        s = self.settings
        cooldown = s.resend_cooldown_seconds
        rules = [*self.lockout(address, ip), Rule(key(COOLDOWN, address), 1 if cooldown else 0, cooldown)]
        if not test_number:
            rules += [
                Rule(key(SEND, address), s.sends_per_phone_per_hour, HOUR),
                Rule(SEND_ALL, s.global_sends_per_hour, HOUR),
            ]
            if not allowed:
                rules.append(Rule(key(SEND_IP, ip), s.sends_per_ip_per_hour, HOUR))
        return rules

    def for_check(self, subject: str, ip: str, *, allowed: bool = False) -> list[Rule]:
        """Rules an answer (a code, a password) for ``subject`` from ``ip`` must pass (an allowed
        subject skips the per-address cap; the code's own attempts still hold)."""
        return [*self.lockout(subject, ip)] if allowed else [*self.lockout(subject, ip), self.per_address(ip)]

    def per_address(self, ip: str) -> Rule:
        """Proofs from one client address per 10 minutes (the one-step logins' only rule)."""
        return Rule(key(CHECK_IP, ip), self.settings.checks_per_ip_per_10min, TEN_MINUTES)
