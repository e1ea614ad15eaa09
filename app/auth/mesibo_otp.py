"""Phone + a code that mesibo makes and checks, as the PHP original does.

Step 1 asks mesibo's ``otp`` op for a code (its tries, lifetime and reuse from ``[auth.mesibo_otp]``)
and delivers it through the configured sender (the ``log`` sender logs it); step 2 hands the code
to ``useradd``, which mints only with it. The service keeps no code, but its own limits stand in
front as for any phone login: cooldown, caps, lock-out, global budget, country policy, the block
and allow lists, and test numbers (which keep their fixed code and never reach mesibo's ``otp``).
It costs one more call to mesibo per step 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ApiError
from ..mesibo import MesiboError
from ..schema import between, setting
from ..store import Listing, Rule
from ..store.audit import EventName
from . import Identity, LoginKit, LoginRequest
from .phone import PhoneLogin


@dataclass(frozen=True)
class MesiboOtpSettings:
    """mesibo-managed codes (``[auth.mesibo_otp]``), with ``auth.method = "mesibo_otp"``."""

    tries: int = setting(5, "Wrong answers mesibo allows per code.", check=between(1, 10))
    expiry_seconds: int = setting(300, "Lifetime of a code mesibo makes, in seconds.", check=between(30, 3600))
    reuse: bool = setting(True, "Within its lifetime mesibo answers step 1 again with the same code.")


class MesiboCodeLogin(PhoneLogin):
    section = "auth.mesibo_otp"
    Settings = MesiboOtpSettings

    def __init__(self, options: MesiboOtpSettings, kit: LoginKit):
        super().__init__(None, kit)
        self.options = options

    def issue(
        self, request: LoginRequest, address: str, test_code: str | None, rules: list[Rule], listing: Listing | None
    ) -> tuple[str, int, Sequence[Rule]]:
        if test_code:  # test numbers keep their fixed code, checked by the service
            return super().issue(request, address, test_code, rules, listing)
        kit, options = self.kit, self.options
        counted = kit.store.hit(rules, request.now, listing)  # count the send first: a refused one never reaches mesibo
        try:
            code = kit.mesibo.create_code(
                address, tries=options.tries, expiry_seconds=options.expiry_seconds, reuse=options.reuse
            )
        except MesiboError as exc:
            kit.store.give_back(counted, request.now)
            raise ApiError(exc.code, detail=str(exc)) from None
        return code, request.now + options.expiry_seconds, counted

    def prove(self, request: LoginRequest) -> Identity:
        raw = request.fields.text(self.field, error=self.invalid)
        if self.test_code(raw, request.now):
            return super().prove(request)
        kit = self.kit
        address, _ = self.address(request)
        answer = request.fields.text("otp", error="BADCODE").replace(" ", "")
        name = request.fields.text("name", error="BADREQUEST")[:128]
        rules, listing = self.check_rules(request, address)
        kit.store.hit(rules, request.now, listing)
        failures = kit.limits.failures(address, request.client_ip)

        def refused() -> None:
            request.audit.note(EventName.WRONG, "refused by mesibo")
            kit.store.count(failures, request.now)

        request.audit.note(EventName.PROVED, "for mesibo to check")
        return Identity(address, name, otp=answer, refused=refused)
