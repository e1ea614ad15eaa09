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
                address, tries=options.tries, expiry_seconds=options.expiry_seconds, reuse=options.reuse,
                appid=request.appid,
            )
        except MesiboError as exc:
            kit.store.give_back(counted, request.now)
            raise ApiError(exc.code, detail=str(exc)) from None
        return code, request.now + options.expiry_seconds, counted

    def _checked_here(self, request: LoginRequest) -> bool:
        """Test numbers keep their fixed code, checked by the service as for the phone login."""
        return self.test_code(request.fields.text(self.field, error=self.invalid), request.now) is not None

    def prove(self, request: LoginRequest) -> Identity:
        """The limits pass: mesibo checks the code itself, when it mints (``mint``)."""
        if self._checked_here(request):
            return super().prove(request)
        address, _ = self.address(request)
        name = request.fields.text("name", error="BADREQUEST")[:128]
        rules, listing = self.check_rules(request, address)
        self.kit.store.hit(rules, request.now, listing)
        request.audit.note(EventName.PROVED, "for mesibo to check")
        return Identity(address, name)

    def delete(self, identity: Identity, request: LoginRequest) -> None:
        """mesibo checks its codes only when it mints, and they know no purpose: the code is proved by
        a ``useradd`` with it (the token that mints dies with the user), then the user is deleted."""
        self.mint(identity, request)
        super().delete(identity, request)

    def mint(self, identity: Identity, request: LoginRequest) -> str:
        """``useradd`` with the user's answer: mesibo mints only with its own code. Its refusal is
        the user's wrong answer: counted against the lock-out, answered BADCODE."""
        if self._checked_here(request):
            return super().mint(identity, request)
        kit = self.kit
        answer = request.fields.text("otp", error="BADCODE").replace(" ", "")
        try:
            return kit.mesibo.add_user(identity.address, request.appid, name=identity.name, otp=answer)
        except MesiboError as exc:
            if exc.code != "BADCODE":
                raise
            request.audit.note(EventName.WRONG, "refused by mesibo")
            kit.store.count(kit.limits.failures(self.limit_subject(identity.address), request.client_ip), request.now)
            raise ApiError("BADCODE", detail=f"mesibo refused the code ({exc.upstream_error})") from None
