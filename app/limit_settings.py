"""The ``[limits]`` section: every abuse limit's cap and window, checked at start-up (``app.limits``
makes the rules from it)."""

from __future__ import annotations

import dataclasses
from typing import Any

from .phones import calling_codes_problem
from .schema import between, setting


def _country_caps(value: dict) -> str | None:
    wrong = [code for code, cap in value.items() if not isinstance(cap, int) or isinstance(cap, bool) or cap < 0]
    return calling_codes_problem(list(value)) or (f"the caps for {wrong} must be whole numbers" if wrong else None)


def _prefix_caps(value: dict) -> str | None:
    wrong = [
        p
        for p, cap in value.items()
        if not str(p).isdigit() or not isinstance(cap, int) or isinstance(cap, bool) or cap < 0
    ]
    return f"{wrong}: a prefix is digits, its cap a whole number" if wrong else None


@dataclasses.dataclass(frozen=True)
class LimitSettings:
    """Abuse limits (0 turns a limit off)."""

    resend_cooldown_seconds: int = setting(60, "Seconds between two codes for one phone.", check=between(0, 86400))
    sends_per_phone_per_hour: int = setting(5, "Codes sent to one phone per hour.", check=between(0, 1000000))
    sends_per_ip_per_hour: int = setting(20, "Codes requested by one client IP per hour.", check=between(0, 1000000))
    checks_per_ip_per_10min: int = setting(
        60, "Code checks by one client IP per 10 minutes.", check=between(0, 1000000)
    )
    failures_per_phone_per_day: int = setting(
        100,
        "Wrong answers for one phone per 24 hours from all addresses "
        "together, across codes; then the phone is locked (NIST SP 800-63B: "
        "at most 100).",
        check=between(0, 100),
    )
    failures_per_phone_per_ip_per_day: int = setting(
        10,
        "Wrong answers for one phone from one client address per "
        "24 hours; then that address may not log that phone in (its "
        "owner elsewhere still can).",
        check=between(0, 100),
    )
    global_sends_per_hour: int = setting(1000, "Codes sent by the whole service per hour.", check=between(0, 100000000))
    new_numbers_percent: int = setting(
        80,
        "Percent of global_sends_per_hour that numbers which never proved a code "
        "may use; the rest is kept for returning users (SMS pumping cannot shut them "
        "out).",
        check=between(1, 100),
    )
    sends_per_country_per_hour: int = setting(
        0, "Codes sent to one calling code per hour (0: no cap per country).", check=between(0, 100000000)
    )
    country_sends_per_hour: dict[str, Any] = setting(
        {},
        'Calling code -> its own cap per hour, over the one above (e.g. {"1" = 500, "44" = 200}).',
        check=_country_caps,
    )
    prefix_sends_per_hour: dict[str, Any] = setting(
        {},
        "Phone prefix (calling code and leading digits) -> codes sent "
        'to it per hour (e.g. {"447700" = 100}); the longest prefix '
        "that matches counts.",
        check=_prefix_caps,
    )
    failures_per_device_per_day: int = setting(
        10,
        "Wrong answers per 24 hours from a device the account logged in "
        "from before (the app's 'device' id); such a device is not held by "
        "the two caps above, so a lock-out aimed at the account never shuts "
        "it out.",
        check=between(0, 100),
    )
    known_device_days: int = setting(
        180, "Days a device stays known after its last login (0: no device is known).", check=between(0, 3650)
    )
    quarantine_prefix_digits: int = setting(
        6,
        "Automatic quarantine against SMS pumping: the leading digits of a "
        "phone (with its calling code) that make its prefix (0: off).",
        check=between(0, 15),
    )
    quarantine_min_sends: int = setting(
        50, "Codes sent to one prefix within the window before it can be quarantined.", check=between(1, 1000000)
    )
    quarantine_min_proved_percent: int = setting(
        10, "Quarantine a prefix when fewer of its codes than this were proved.", check=between(1, 100)
    )
    quarantine_max_undelivered_percent: int = setting(
        50,
        "Quarantine a prefix too when this share of its codes or "
        "more never arrived, as the providers' delivery receipts say "
        "(0: receipts do not count).",
        check=between(0, 100),
    )
    quarantine_window_seconds: int = setting(
        3600, "The window sends and proofs are counted over.", check=between(60, 86400)
    )
    quarantine_seconds: int = setting(
        3600,
        "How long new numbers of a quarantined prefix get no code (numbers that proved one before still do).",
        check=between(60, 604800),
    )
    ipv6_prefix_length: int = setting(
        64, "Per-address limits count an IPv6 client's network of this length.", check=between(32, 128)
    )
    ipv4_prefix_length: int = setting(32, "The same for IPv4 (32: each address).", check=between(8, 32))
