"""Phone + a code that mesibo makes and checks, as the PHP original does.

Step 1 asks mesibo's ``otp`` op for a code (its tries, lifetime and reuse from ``[auth.mesibo_otp]``)
and delivers it through the configured sender (the ``log`` sender logs it); step 2 hands the code
to ``useradd``, which mints only with it. mesibo's codes know no app id: the service keeps a keyed
hash of each for the app id (and purpose) it was asked for and checks the answer against it first,
so a code asked for one app id never mints for another. Its own limits stand in front as for any
phone login: cooldown, caps, lock-out, global budget, country policy, the block and allow lists,
and test numbers (which keep their fixed code and never reach mesibo's ``otp``). It costs one more
call to mesibo per step 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ApiError
from ..mesibo import MesiboError
from ..schema import between, setting
from ..store import CodeRecord, Listing, Rule
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
                address,
                tries=options.tries,
                expiry_seconds=options.expiry_seconds,
                reuse=options.reuse,
                appid=request.appid,
            )
        except MesiboError as exc:
            kit.store.give_back(counted, request.now)
            raise ApiError(exc.code, detail=str(exc)) from None
        # mesibo's codes know no app id and no purpose: the service keeps the code's keyed hash for
        # what it was asked for (``request.scope``), so step 2 (``prove``, as for the phone login)
        # refuses it for another app id or purpose before mesibo is asked; nothing counted again
        expires_at = request.now + options.expiry_seconds
        digest = kit.codes.digest(address, request.scope, code)
        kit.store.issue(CodeRecord(kit.codes.blind(address), request.scope, digest, expires_at), [], request.now)
        return code, expires_at, counted

    def _checked_here(self, request: LoginRequest) -> bool:
        """Test numbers keep their fixed code, checked by the service alone, as for the phone login."""
        return self.test_code(request.fields.text(self.field, error=self.invalid), request.now) is not None

    def delete(self, identity: Identity, request: LoginRequest) -> None:
        """mesibo checks its codes only when it mints, and they know no purpose: the code is proved by
        a ``useradd`` with it (the token that mints dies with the user), then the user is deleted."""
        self.mint(identity, request)
        super().delete(identity, request)

    def mint(self, identity: Identity, request: LoginRequest) -> str:
        """``useradd`` with the user's answer (proved here for its app id already): mesibo mints only
        with its own code. Its refusal is the user's wrong answer: counted against the lock-out,
        answered BADCODE (the code here is given back, as for any failed mint)."""
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
