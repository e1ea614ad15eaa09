"""Phone + one-time code: the login of the mesibo messenger apps."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..fields import Fields
from ..senders import Message, SendError, render
from ..store import CodeRecord, Refusal
from . import Identity, LoginRequest

if TYPE_CHECKING:
    from ..services import Services

logger = logging.getLogger("app.auth")


def refuse(refusal: Refusal, services: Services) -> ApiError:
    services.observe_refusal(refusal)
    return ApiError("RATELIMIT", retry_after=refusal.retry_after)


class CodeLogin:
    """Two steps: ask for a code sent to an address, then answer with it.

    Subclasses say which field holds the address and how it is validated; the codes,
    limits, delivery and single use are the same for every channel.
    """

    field = "phone"
    invalid = "BADPHONE"
    channel = "sms"

    def is_proof(self, fields: Fields) -> bool:
        return "otp" in fields

    def normalize_address(self, raw: str, services: Services) -> str | None:
        """The address in its one canonical form, or None when it is not valid."""
        raise NotImplementedError

    def test_code(self, raw: str, services: Services, now: int) -> tuple[str, str] | None:
        """(address, fixed code) for an active test address; none by default."""
        return None

    def address(self, request: LoginRequest, services: Services) -> tuple[str, str | None]:
        """The normalized address and, for an active test address, its fixed code."""
        raw = request.fields.text(self.field, error=self.invalid)
        test = self.test_code(raw, services, request.now)
        if test:
            return test
        address = self.normalize_address(raw, services)
        if not address:
            raise ApiError(self.invalid)
        return address, None

    def begin(self, request: LoginRequest, services: Services) -> dict[str, Any]:
        address, test_code = self.address(request, services)
        rules = services.limits.for_send(address, request.client_ip, test_number=test_code is not None)
        refusal = services.store.known_refusal(rules, request.now)  # a flood stops here, before any work
        if refusal:
            raise refuse(refusal, services)
        codes = services.codes
        code = test_code or codes.new_code()
        record = CodeRecord(
            address, request.appid, codes.digest(address, request.appid, code), request.now + codes.ttl_seconds
        )
        refusal = services.store.issue(record, rules, request.now)
        if refusal:
            raise refuse(refusal, services)
        if test_code is None:
            self.deliver(address, code, record.expires_at, rules, request, services)
        return services.login_notice()

    def message(self, address: str, code: str, expires_at: int, services: Services) -> Message:
        """The message that carries a code, with the configured text."""
        config = services.config
        minutes = max(1, services.codes.ttl_seconds // 60)
        text = render(
            config["sender.template"],
            code=code,
            app_name=config["sender.app_name"],
            minutes=minutes,
            retriever_hash=config["sender.sms_retriever_hash"],
        )
        return Message(address, code, text, expires_at, minutes, self.channel)

    def deliver(self, address, code, expires_at, rules, request: LoginRequest, services: Services) -> None:
        message = self.message(address, code, expires_at, services)
        try:
            message_id = services.sender.send(message)
        except SendError as exc:
            # A send that did not happen must not cost the user a cooldown or a slot in the caps.
            services.store.give_back(rules, request.now)
            services.observe_send("error")
            logger.warning("code delivery failed: %s (provider error %s)", exc, exc.provider_code or "none")
            raise ApiError("SENDFAIL") from None
        except Exception:
            services.store.give_back(rules, request.now)
            services.observe_send("error")
            raise
        services.observe_send("ok")
        logger.debug("code sent, message id %s", message_id)

    def prove(self, request: LoginRequest, services: Services) -> Identity:
        address, _ = self.address(request, services)
        answer = request.fields.text("otp", error="BADCODE").replace(" ", "")
        name = request.fields.text("name", error="BADREQUEST")[:128]  # before the code is spent
        store = services.store
        codes = services.codes
        checked = store.check_code(
            address,
            request.appid,
            services.limits.for_check(address, request.client_ip),
            request.now,
            codes.max_attempts,
            lambda digest: codes.matches(digest, address, request.appid, answer),
            failure=services.limits.failure(address),
        )
        if isinstance(checked, Refusal):
            raise refuse(checked, services)
        if not isinstance(checked, CodeRecord):
            raise ApiError("BADCODE")  # wrong, expired, used, unknown, attempts spent: one answer
        return Identity(address, name, release=lambda: store.restore(checked, services.clock()))


class PhoneLogin(CodeLogin):
    field = "phone"
    invalid = "BADPHONE"
    channel = "sms"

    def __init__(self, config=None):
        pass

    def normalize_address(self, raw: str, services: Services) -> str | None:
        return services.phones.normalize(raw)

    def test_code(self, raw: str, services: Services, now: int) -> tuple[str, str] | None:
        digits = services.phones.digits(raw)
        code = services.test_numbers.code_for(digits, now)
        return (digits, code) if code else None
