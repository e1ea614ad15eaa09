"""Phone numbers: normalization to E.164 digits, validation and the country policy."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import phonenumbers

from .schema import day_end, setting

_SEPARATORS = re.compile(r"[\s\-().]")


# -- the [phones] settings' checks ------------------------------------------------------------------


def calling_codes_problem(value: list) -> str | None:
    for item in value:
        if not str(item).isdigit() or len(str(item)) > 3:
            return f"calling codes are 1-3 digits, got {item!r}"
    return None


NUMBER_TYPES = ("premium_rate", "shared_cost", "uan", "pager", "personal_number", "voip", "toll_free", "voicemail")


def number_types_problem(value: list) -> str | None:
    wrong = [kind for kind in value if kind not in NUMBER_TYPES]
    return f"unknown number types {wrong}; known: {', '.join(NUMBER_TYPES)}" if wrong else None


def test_numbers_problem(value: dict) -> str | None:
    for phone, entry in value.items():
        if not str(phone).lstrip("+").isdigit():
            return f"{phone!r} is not a phone number of digits"
        code = entry.get("code") if isinstance(entry, dict) else entry
        if not isinstance(code, str) or not code.isdigit():
            return f"the code for {phone!r} must be a string of digits"
        if isinstance(entry, dict) and "until" in entry:
            try:
                day_end(entry["until"])
            except ValueError:
                return f"the end date for {phone!r} must be YYYY-MM-DD"
    return None


class PhonePolicy:
    """Turns what an app sends into E.164 digits (no ``+``), or None when it is not a valid number.

    Apps send country code and national number as digits, maybe with a leading ``+`` or
    an international ``00`` prefix; both are accepted, as the PHP original did.
    """

    def __init__(self, *, allow: Iterable[str] = (), deny: Iterable[str] = (), refuse_types: Iterable[str] = ()):
        self.allow = frozenset(str(code) for code in allow)
        self.deny = frozenset(str(code) for code in deny)
        # premium-rate, shared-cost, UAN, pager and personal numbers: what SMS pumping sends to
        self.refused_types = frozenset(getattr(phonenumbers.PhoneNumberType, kind.upper()) for kind in refuse_types)
        # Parsing with libphonenumber is the costliest step of a request that a limit then refuses;
        # the answer for a string never changes, and floods repeat the same strings. 4,096 strings
        # (about 1.3 MiB per worker): a bound that a worker's memory reaches within seconds of load,
        # where 16,384 kept it growing for minutes (bench/run.py's growth measurement).
        self.normalize = functools.lru_cache(maxsize=4096)(self._normalize)

    @staticmethod
    def calling_code(digits: str) -> str:
        """The calling code of E.164 digits (calling codes are prefix-free: the first that is one)."""
        known = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
        return next((digits[:n] for n in (1, 2, 3) if digits[:n].isdigit() and int(digits[:n]) in known), "")

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def region(digits: str) -> str:
        """The region (ISO 3166: US, BR, ...) of E.164 digits ("" when none), for the message's language."""
        try:
            return phonenumbers.region_code_for_number(phonenumbers.parse("+" + digits, None)) or ""
        except phonenumbers.NumberParseException:
            return ""

    @staticmethod
    def digits(raw: str) -> str:
        return _SEPARATORS.sub("", raw).lstrip("+").lstrip("0")

    def _normalize(self, raw: str) -> str | None:
        digits = self.digits(raw)
        if not digits.isdigit() or not 8 <= len(digits) <= 15:
            return None
        try:
            number = phonenumbers.parse("+" + digits, None)
        except phonenumbers.NumberParseException:
            return None
        # the number's type says whether it is valid too (UNKNOWN: no pattern of its region matches),
        # at the cost of is_valid_number alone
        kind = phonenumbers.number_type(number)
        if kind == phonenumbers.PhoneNumberType.UNKNOWN or kind in self.refused_types:
            return None
        calling_code = str(number.country_code)
        if self.allow and calling_code not in self.allow:
            return None
        if calling_code in self.deny:
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


class TestNumbers:
    """Configured phone -> fixed code, each optionally until an end date (for app-store review)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, table: Mapping[str, Any]):
        self._codes: dict[str, tuple[str, float | None]] = {}
        for phone, entry in table.items():
            if isinstance(entry, dict):
                until = day_end(entry["until"]) if entry.get("until") else None
                self._codes[str(phone).lstrip("+")] = (str(entry["code"]), until)
            else:
                self._codes[str(phone).lstrip("+")] = (str(entry), None)

    def __bool__(self) -> bool:
        return bool(self._codes)

    def phones(self) -> list[str]:
        return sorted(self._codes)

    def entries(self) -> list[tuple[str, str]]:
        """(phone, until when) of each, the end date as YYYY-MM-DD (UTC) or 'always'."""
        import datetime as dt

        def until(end: float | None) -> str:  # in UTC, as the end date was given and is shown
            return "always" if end is None else dt.datetime.fromtimestamp(end - 86400, dt.UTC).date().isoformat()

        return [(phone, until(self._codes[phone][1])) for phone in sorted(self._codes)]

    def code_for(self, digits: str, now: float) -> str | None:
        found = self._codes.get(digits)
        if found is None:
            return None
        code, until = found
        return code if until is None or now < until else None


@dataclasses.dataclass(frozen=True)
class PhoneSettings:
    """Phone policy and test numbers."""

    allow_calling_codes: list[str] = setting(
        [], "Only these calling codes may log in (empty: all).", check=calling_codes_problem
    )
    deny_calling_codes: list[str] = setting([], "These calling codes may not log in.", check=calling_codes_problem)
    refuse_types: list[str] = setting(
        ["premium_rate", "shared_cost", "uan", "pager", "personal_number"],
        "Number types answered as invalid (SMS pumping targets); also: voip, toll_free, voicemail.",
        check=number_types_problem,
    )
    test_numbers: dict[str, Any] = setting(
        {}, "Phone -> fixed code (or {code, until}) for app-store review; no SMS is sent.", check=test_numbers_problem
    )
