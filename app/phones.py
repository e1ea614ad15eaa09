"""Phone numbers: normalization to E.164 digits, validation and the country policy."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import phonenumbers

_SEPARATORS = re.compile(r"[\s\-().]")


class PhonePolicy:
    """Turns what an app sends into E.164 digits (no ``+``), or None when it is not a valid number.

    Apps send country code and national number as digits, maybe with a leading ``+`` or
    an international ``00`` prefix; both are accepted, as the PHP original did.
    """

    def __init__(self, *, allow: Iterable[str] = (), deny: Iterable[str] = ()):
        self.allow = frozenset(str(code) for code in allow)
        self.deny = frozenset(str(code) for code in deny)
        # Parsing with libphonenumber is the costliest step of a request that a limit then refuses;
        # the answer for a string never changes, and floods repeat the same strings.
        self.normalize = functools.lru_cache(maxsize=16384)(self._normalize)

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
        if not phonenumbers.is_valid_number(number):
            return None
        calling_code = str(number.country_code)
        if self.allow and calling_code not in self.allow:
            return None
        if calling_code in self.deny:
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
