"""Phone + one-time code: the login of the mesibo messenger apps."""

from __future__ import annotations

from ..errors import ApiError
from ..store import Watch
from . import LoginRequest
from .otp import CodeLogin


class PhoneLogin(CodeLogin):
    field = "phone"
    invalid = "BADPHONE"
    channel = "sms"

    def normalize_address(self, raw: str) -> str | None:
        return self.kit.phones.normalize(raw)

    def watch_of(self, address: str) -> Watch | None:
        return self.kit.limits.watch(address)

    def channel_of(self, request: LoginRequest) -> str:
        allowed = self.kit.messages.channels
        try:
            asked = request.fields.text("channel", error="BADCHANNEL").lower()
        except ApiError:
            asked = "?"
        if asked and asked not in allowed:
            raise ApiError("BADCHANNEL", detail=f"channel {asked[:16]!r}: one of {', '.join(allowed)}")
        return asked or allowed[0]

    def region_of(self, address: str) -> str:
        return self.kit.phones.region(address)

    def country_of(self, address: str) -> str:
        return self.kit.phones.calling_code(address)

    def test_code(self, raw: str, now: int) -> tuple[str, str] | None:
        digits = self.kit.phones.digits(raw)
        code = self.kit.test_numbers.code_for(digits, now)
        return (digits, code) if code else None
