"""The abuse limits as rules for the store: every rule the service applies is made here - its
counter's key, its cap and its window - and the support commands read them from here too.

No Flask; the store does the counting atomically.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable

from .limit_settings import LimitSettings
from .store import Rule, Watch

HOUR = 3600
DAY = 86400
TEN_MINUTES = 600

# Each rule's counter key is KIND:subject (KIND:subject:ip for the per-address lock-out).
COOLDOWN, SEND, SEND_ALL, SEND_NEW, SEND_CC, SEND_PFX, SEND_IP, CHECK_IP, FAIL, FAIL_IP, PROVED = (
    "cooldown",
    "send",
    "send-all",
    "send-new",
    "send-cc",
    "send-pfx",
    "send-ip",
    "check-ip",
    "fail",
    "fail-ip",
    "proved",
)
# A device the account logged in from (KNOWN:subject-and-device) and its own lock-out (FAIL_DEV).
KNOWN, FAIL_DEV = "known", "fail-dev"
# The kinds of rule that can refuse a request: a refusal's kind, in its answer's log line and metrics.
REFUSING = (COOLDOWN, SEND, SEND_ALL, SEND_NEW, SEND_CC, SEND_PFX, SEND_IP, CHECK_IP, FAIL, FAIL_IP, FAIL_DEV)
YEAR = 365 * DAY


def key(kind: str, *parts: str) -> str:
    return ":".join((kind, *parts))


class Limits:
    """``blind`` turns a subject (a phone, an e-mail address, ``user:id``) into what the counter keys
    hold (``Codes.blind``: a keyed hash); client networks stay as they are."""

    def __init__(self, settings: LimitSettings, blind: Callable[[str], str] = lambda subject: subject):
        self.settings = settings
        self.blind = blind
        self._networks = functools.lru_cache(maxsize=4096)(self._network)

    def network(self, ip: str) -> str:
        """What the per-address limits count a client as: its IPv6 network (a /64 by default - one
        subscriber's, so an attacker does not get 2^64 addresses' worth of limits), its IPv4 address
        (or network, when configured). Anything that is no address counts as itself."""
        return self._networks(ip)

    def _network(self, ip: str) -> str:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return ip
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        length = self.settings.ipv6_prefix_length if address.version == 6 else self.settings.ipv4_prefix_length
        if length == address.max_prefixlen:
            return str(address)
        return str(ipaddress.ip_network(f"{address}/{length}", strict=False))

    def caps(self) -> dict[str, int]:
        """Each kind of rule's cap (0: off), as ``status`` shows it."""
        s = self.settings
        return {
            COOLDOWN: 1 if s.resend_cooldown_seconds else 0,
            SEND: s.sends_per_phone_per_hour,
            SEND_ALL: s.global_sends_per_hour,
            SEND_NEW: self._new_numbers_cap(),
            SEND_IP: s.sends_per_ip_per_hour,
            CHECK_IP: s.checks_per_ip_per_10min,
            FAIL: s.failures_per_phone_per_day,
            FAIL_IP: s.failures_per_phone_per_ip_per_day,
            FAIL_DEV: s.failures_per_device_per_day,
        }

    def keys_of_subject(self, subject: str) -> tuple[list[str], list[str]]:
        """The counters about one phone, address or user (keys, and LIKE patterns), for ``status``
        and ``unblock``."""
        hidden = self.blind(subject)
        return [key(COOLDOWN, hidden), key(SEND, hidden), key(FAIL, hidden)], [
            key(FAIL_IP, hidden, "%"),
            key(FAIL_DEV, hidden, "%"),
        ]

    def marks_of_subject(self, subject: str) -> tuple[list[str], list[str]]:
        """What the service remembers in favour of a subject - it proved a code, the devices it logged
        in from - (keys, and LIKE patterns): not limits, so ``unblock`` leaves them; deleting the
        account erases them."""
        return [self.proof(subject)[0]], [key(KNOWN, self.blind(subject), "%")]

    def keys_of_ip(self, ip: str) -> tuple[list[str], list[str]]:
        """The counters about one client address - its network's (keys, and LIKE patterns)."""
        net = self.network(ip)
        return [key(SEND_IP, net), key(CHECK_IP, net)], [key(FAIL_IP, "%", net)]

    def lockout(self, subject: str, ip: str) -> list[Rule]:
        """The failure lock-out, checked here and fed by wrong answers (``failures``).

        Two rules, so that wrong answers from one address lock out only that address for that
        subject, while guessing from all addresses together stays bounded (SECURITY.md).
        """
        s, ip, subject = self.settings, self.network(ip), self.blind(subject)
        return [
            Rule(key(FAIL_IP, subject, ip), s.failures_per_phone_per_ip_per_day, DAY, count=False),
            Rule(key(FAIL, subject), s.failures_per_phone_per_day, DAY, count=False),
        ]

    def failures(self, subject: str, ip: str, device: str = "") -> list[tuple[str, int]]:
        """The counters (key, window) a wrong answer for ``subject`` from ``ip`` (and ``device``, the
        app's device id) adds to: the account's, the address's and the device's - whether or not the
        device is known, which only the transaction that counts can tell."""
        counters = [(rule.key, rule.window) for rule in self.lockout(subject, ip)]
        return counters + ([(self._device_key(FAIL_DEV, subject, device), DAY)] if device else [])

    def _device_key(self, kind: str, subject: str, device: str) -> str:
        # the subject's hash first, so that unblock and deleteaccount find a subject's devices
        return key(kind, self.blind(subject), self.blind(f"{subject}\x1f{device}"))

    def known_device(self, subject: str, device: str) -> tuple[str, int] | None:
        """The counter (key, window) that says ``device`` logged ``subject`` in before; None when
        there is no device id or known devices are off."""
        days = self.settings.known_device_days
        return (self._device_key(KNOWN, subject, device), days * DAY) if device and days else None

    def for_known_device(self, subject: str, ip: str, device: str, *, allowed: bool = False) -> list[Rule]:
        """Rules an answer from a known device must pass instead of ``for_check``'s: its own lock-out
        (the account's and the address's caps do not hold it - a lock-out aimed at the account from
        elsewhere never shuts its owner's device out) and the per-address cap."""
        rules = [
            Rule(
                self._device_key(FAIL_DEV, subject, device), self.settings.failures_per_device_per_day, DAY, count=False
            )
        ]
        return rules if allowed else [*rules, self.per_address(ip)]

    def _new_numbers_cap(self) -> int:
        s = self.settings
        return max(1, s.global_sends_per_hour * s.new_numbers_percent // 100) if s.global_sends_per_hour else 0

    def proof(self, subject: str) -> tuple[str, int]:
        """The counter (key, window) that says a subject proved a code: a returning user for a year."""
        return key(PROVED, self.blind(subject)), YEAR

    def for_send(
        self,
        address: str,
        ip: str,
        *,
        test_number: bool = False,
        allowed: bool = False,
        returning: bool = False,
        country: str = "",
        phone: str = "",
    ) -> list[Rule]:
        """Rules a code request must pass. Test numbers send nothing, so only the per-address lock-out
        applies (no cooldown, no cap: app-store review and CI runs ask again at once); a number on
        the operator's allow list skips the per-address cap. Every send counts against the global
        budget, its calling code's (``country``) and its prefix's when one is configured (``phone``);
        a number that never proved a code also against the new numbers' share of the global budget,
        so a burst of new numbers (SMS pumping) leaves the rest to returning users and allowed
        numbers."""
        # an address locked out for this subject gets no code for it; the subject's own lock-out (all
        # addresses together) holds answers, not codes: a device the account logged in from before
        # keeps its way in, and asks for its code like any other (send caps bound the messages)
        locked_here = self.lockout(address, ip)[:1]
        if test_number:
            return locked_here
        s = self.settings
        cooldown = s.resend_cooldown_seconds
        hidden = self.blind(address)
        rules = [
            *locked_here,
            Rule(key(COOLDOWN, hidden), 1 if cooldown else 0, cooldown),
            Rule(key(SEND, hidden), s.sends_per_phone_per_hour, HOUR),
            Rule(SEND_ALL, s.global_sends_per_hour, HOUR),
        ]
        if not allowed:
            rules.append(Rule(key(SEND_IP, self.network(ip)), s.sends_per_ip_per_hour, HOUR))
        if not (allowed or returning):
            rules.append(Rule(SEND_NEW, self._new_numbers_cap(), HOUR))
        cap = int(s.country_sends_per_hour.get(country, s.sends_per_country_per_hour)) if country else 0
        if cap:
            rules.append(Rule(key(SEND_CC, country), cap, HOUR))
        prefixes = s.prefix_sends_per_hour
        prefix = next((phone[:n] for n in range(len(phone), 0, -1) if phone[:n] in prefixes), "") if phone else ""
        if prefix and prefixes[prefix]:
            rules.append(Rule(key(SEND_PFX, prefix), int(prefixes[prefix]), HOUR))
        return rules

    def watch(self, phone: str) -> Watch | None:
        """The prefix a send to ``phone`` (E.164 digits) counts for, for the automatic quarantine."""
        s = self.settings
        if not s.quarantine_prefix_digits or not phone.isdigit():
            return None
        return Watch(
            phone[: s.quarantine_prefix_digits],
            s.quarantine_window_seconds,
            s.quarantine_min_sends,
            s.quarantine_min_proved_percent,
            s.quarantine_seconds,
            s.quarantine_max_undelivered_percent,
        )

    @staticmethod
    def send_variants(rules: list[Rule]) -> tuple[list[Rule], list[Rule]]:
        """From the rules of a new number on no list (``for_send``'s), those of a number on the allow
        list and those of a returning one - what ``for_send(allowed=True)`` and ``for_send(returning=
        True)`` make, without building them again on the path a flood takes."""
        returning = [rule for rule in rules if rule.key != SEND_NEW]
        return [rule for rule in returning if not rule.key.startswith(SEND_IP + ":")], returning

    def for_check(self, subject: str, ip: str, *, allowed: bool = False) -> list[Rule]:
        """Rules an answer (a code, a password) for ``subject`` from ``ip`` must pass (an allowed
        subject skips the per-address cap; the code's own attempts still hold)."""
        return [*self.lockout(subject, ip)] if allowed else [*self.lockout(subject, ip), self.per_address(ip)]

    def per_address(self, ip: str) -> Rule:
        """Proofs from one client address per 10 minutes (the one-step logins' only rule)."""
        return Rule(key(CHECK_IP, self.network(ip)), self.settings.checks_per_ip_per_10min, TEN_MINUTES)
