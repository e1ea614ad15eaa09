"""Typed access to a request's fields: strings, trimmed; anything else is the field's own error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ApiError

MAX_FIELD_CHARS = 4096


class Fields:
    def __init__(self, data: Mapping[str, Any]):
        self._data = data

    def __contains__(self, name: str) -> bool:
        return self._data.get(name) not in (None, "")

    def text(self, name: str, *, error: str, strip: bool = True) -> str:
        """The field as a trimmed string ("" when absent or null; untrimmed with ``strip=False``).

        A whole number is accepted as its digits (people type phones and codes as numbers);
        a list, object, boolean or fraction raises ``error``.
        """
        value = self._data.get(name)
        if value is None:
            return ""
        if isinstance(value, bool):
            raise ApiError(error, detail=f"{name} must be a string")
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
            raise ApiError(error, detail=f"{name} must be a string")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:  # JSON allows lone surrogates ("\ud800"); text cannot hold them
                raise ApiError(error, detail=f"{name} is not valid text") from None
        return value.strip() if strip else value
