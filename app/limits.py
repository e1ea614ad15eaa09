"""The abuse limits as rules for the store. No Flask; the store does the counting atomically."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .store import Rule

HOUR = 3600
DAY = 86400


class Limits:
    def __init__(self, config: Mapping[str, Any]):
        self.cooldown = config["limits.resend_cooldown_seconds"]
        self.per_phone = config["limits.sends_per_phone_per_hour"]
        self.per_ip = config["limits.sends_per_ip_per_hour"]
        self.checks_per_ip = config["limits.checks_per_ip_per_10min"]
        self.failures_per_phone = config["limits.failures_per_phone_per_day"]
        self.global_sends = config["limits.global_sends_per_hour"]

    def lockout(self, address: str) -> Rule:
        """Checked, not counted here: wrong answers feed it through ``failure``."""
        return Rule(f"fail:{address}", self.failures_per_phone, DAY, count=False)

    def failure(self, address: str) -> tuple[str, int]:
        return f"fail:{address}", DAY

    def for_send(self, address: str, ip: str, *, test_number: bool = False) -> list[Rule]:
        """Rules a code request must pass. Test numbers send nothing, so only the cooldown applies."""
        rules = [self.lockout(address), Rule(f"cooldown:{address}", 1 if self.cooldown else 0, self.cooldown)]
        if not test_number:
            rules += [
                Rule(f"send:{address}", self.per_phone, HOUR),
                Rule(f"send-ip:{ip}", self.per_ip, HOUR),
                Rule("send-all", self.global_sends, HOUR),
            ]
        return rules

    def for_check(self, address: str, ip: str) -> list[Rule]:
        return [self.lockout(address), Rule(f"check-ip:{ip}", self.checks_per_ip, 600)]

    @staticmethod
    def kind(key: str) -> str:
        """The rule's kind without its subject, for logs and metrics (``send-ip:1.2.3.4`` -> ``send-ip``)."""
        return key.split(":", 1)[0]
