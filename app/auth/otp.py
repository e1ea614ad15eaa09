"""The two-step code login that the phone and e-mail logins build on.

Step 1 asks for a code sent to an address; step 2 answers with it. A subclass says which field
holds the address and how it is validated; the codes, limits, delivery and single use are the
same for every channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..errors import ApiError
from ..senders import Message, SendError, render
from ..senders.router import Delivery, UndeliveredError
from ..store import Blocked, CodeRecord, Listing, Rule, Watch
from ..store.audit import EventName
from . import LOGIN, Identity, LoginRequest, TwoStepLogin, check_rules, device_of, lang_of

logger = logging.getLogger("app.auth")


class CodeLogin(TwoStepLogin):
    field = "phone"
    invalid = "BADPHONE"
    channel = "sms"
    sends_codes = True

    def normalize_address(self, raw: str) -> str | None:
        """The address in its one canonical form, or None when it is not valid."""
        raise NotImplementedError

    def subject_of(self, typed: str, now: int) -> str | None:
        address = self.normalize_address(typed)
        return self.limit_subject(address) if address else (self.test_code(typed, now) or (None,))[0]

    def country_of(self, address: str) -> str:
        """The calling code a message to ``address`` goes to, for the per-country budgets ("": none)."""
        return ""

    def watch_of(self, address: str) -> Watch | None:
        """The destination prefix a send to ``address`` counts for (automatic quarantine); none by
        default - phones have prefixes, e-mail addresses do not."""
        return None

    def limit_subject(self, address: str) -> str:
        """Whom the limits count a normalized address against: itself, unless several addresses
        reach one inbox (the e-mail login's ``+tags``)."""
        return address

    def test_code(self, raw: str, now: int) -> tuple[str, str] | None:
        """(address, fixed code) for an active test address; none by default."""
        return None

    def address(self, request: LoginRequest) -> tuple[str, str | None]:
        """The normalized address and, for an active test address, its fixed code."""
        raw = request.fields.text(self.field, error=self.invalid)
        test = self.test_code(raw, request.now)
        if test:
            request.audit.address = test[0]
            return test
        address = self.normalize_address(raw)
        if not address:
            raise ApiError(self.invalid, detail=f"{self.field} is missing or not valid")
        request.audit.address = address
        return address, None

    # -- step 1 -------------------------------------------------------------------------------

    def begin(self, request: LoginRequest) -> dict[str, Any]:
        channel = self.channel_of(request)
        address, test_code = self.address(request)
        gate = self.kit.gate
        if test_code is None and gate is not None and gate.enabled:  # before anything is counted or sent
            try:
                gate.check(
                    request.fields.text("attestation", error="BADATTESTATION"),
                    request.client_ip,
                    request.fields.text(self.field, error=self.invalid),
                    request.now,
                )
            except ApiError as refused:
                request.audit.note(EventName.REFUSED, f"attestation: {refused.detail}")
                raise
        rules, listing = self.send_rules(request, address, test_number=test_code is not None)
        self.kit.store.precheck(rules, request.now, listing)  # a flood stops before a code is made
        try:
            code, expires_at, counted = self.issue(request, address, test_code, rules, listing)
        except Blocked as blocked:
            why = f"prefix {blocked.quarantined} quarantined" if blocked.quarantined else "blocked by the operator"
            if blocked.quarantined:
                self.kit.metrics.refusal("quarantine")
            request.audit.note(EventName.REFUSED, why)
            raise ApiError(self.invalid, detail=why) from None
        if listing is not None and "quarantined" in listing.outcome and listing.watch:
            logger.warning("prefix %s quarantined: many codes sent to it, few proved", listing.watch.prefix)
            self.kit.metrics.quarantined()
            request.audit.note(EventName.QUARANTINED, listing.watch.prefix)
        request.audit.note(EventName.ASKED, "test number" if test_code else "")
        if test_code is None:
            message = self.message(
                address, code, expires_at, request.now, request.purpose, lang_of(request.fields), channel
            )
            self.deliver(message, counted, request)
        return {}

    def send_rules(
        self, request: LoginRequest, address: str, *, test_number: bool
    ) -> tuple[list[Rule], Listing | None]:
        """The limits a code request must pass, and the operator's block and allow lists to ask in the
        same transaction (a blocked address is refused before any SMS; test numbers are on no list)."""
        kit = self.kit
        subject, country = self.limit_subject(address), self.country_of(address)
        phone = address if country else ""  # phones have prefixes with budgets of their own
        rules = kit.limits.for_send(subject, request.client_ip, test_number=test_number, country=country, phone=phone)
        if test_number:
            return rules, None
        allowed, returning = kit.limits.send_variants(rules)
        return rules, Listing(
            address, allowed, returning=returning, proof_key=kit.limits.proof(subject)[0], watch=self.watch_of(address)
        )

    def issue(
        self, request: LoginRequest, address: str, test_code: str | None, rules: list[Rule], listing: Listing | None
    ) -> tuple[str, int, Sequence[Rule]]:
        """Make the code and count the send, in one transaction; (the code, when it expires, the rules
        counted)."""
        kit = self.kit
        code = test_code or kit.codes.new_code()
        digest = kit.codes.digest(address, request.scope, code)
        record = CodeRecord(kit.codes.blind(address), request.scope, digest, request.now + kit.codes.ttl_seconds)
        counted = kit.store.issue(record, rules, request.now, listing)
        return code, record.expires_at, counted

    def region_of(self, address: str) -> str:
        """The country (ISO 3166 region) of an address, for the message's language ("": none)."""
        return ""

    def channel_of(self, request: LoginRequest) -> str:
        """The channel the code goes out on: this login's own (e-mail); the phone logins let the app
        choose among ``sender.channels`` (BADCHANNEL otherwise)."""
        return self.channel

    def message(
        self,
        address: str,
        code: str,
        expires_at: int,
        now: int,
        purpose: str = LOGIN,
        lang: str = "",
        channel: str = "",
    ) -> Message:
        """The message that carries a code, made at ``now``, with the configured text for what it
        is for (``purpose``: a login, or deleting the account), in the user's language (``lang``,
        the step-1 field, else the address's country's, else the default; app.messages). A call
        (``channel`` voice) says it, the code digit by digit, twice."""
        settings, texts, channel = self.kit.messages, self.kit.texts, channel or self.channel
        minutes = max(1, self.kit.codes.ttl_seconds // 60)
        language, template = "", settings.template if purpose == LOGIN else settings.delete_template
        if texts is not None:
            language, template = texts.choose(purpose, lang, self.region_of(address) if texts.languages else "")
        if channel == "voice":
            said = template.format(code=", ".join(code), app_name=settings.app_name, minutes=minutes)
            text = f"{said} {said}"
        else:
            text = render(
                template,
                code=code,
                app_name=settings.app_name,
                minutes=minutes,
                retriever_hash=settings.sms_retriever_hash if channel == "sms" else "",
                web_otp_domain=texts.settings.web_otp_domain if texts is not None else "",
            )
        return Message(address, code, text, expires_at, minutes, channel, created_at=now, language=language)

    def deliver(self, message: Message, rules: Sequence[Rule], request: LoginRequest) -> None:
        """Send through the channel's senders (failing over on a definite refusal: app.senders.router);
        each attempt goes into the audit trail and the metrics. None took it: the send is given back
        (no cooldown, no cap used) and SENDFAIL answered."""
        kit = self.kit
        try:
            delivery = kit.router.send(message) if kit.router else Delivery(kit.messages.name, kit.sender.send(message))
        except BaseException as exc:
            # A send that did not happen must not cost the user a cooldown or a slot in the caps.
            kit.store.give_back(rules, request.now)
            refused = exc.delivery.refused if isinstance(exc, UndeliveredError) else [(kit.messages.name, exc)]
            self._refused(refused, request)
            if not isinstance(exc, SendError):
                raise
            logger.warning("code delivery failed: %s (provider error %s)", exc, exc.provider_code or "none")
            raise ApiError("SENDFAIL", detail=f"provider error {exc.provider_code or 'none'}") from None
        self._refused(delivery.refused, request)  # the senders that refused before one took it
        kit.metrics.sent(delivery.sender, "ok")
        request.audit.note(EventName.SENT, f"{delivery.sender} {delivery.message_id}", message_id=delivery.message_id)
        logger.debug("code sent by %s, message id %s", delivery.sender, delivery.message_id)

    def _refused(self, refused: Sequence[tuple[str, BaseException]], request: LoginRequest) -> None:
        for sender, exc in refused:
            self.kit.metrics.sent(sender, "error")
            code = exc.provider_code if isinstance(exc, SendError) else type(exc).__name__
            maybe = " (may have been sent)" if getattr(exc, "maybe_sent", False) else ""
            request.audit.note(EventName.SEND_FAILED, f"{sender} {code or 'none'}{maybe}")

    # -- step 2 -------------------------------------------------------------------------------

    def check_rules(self, request: LoginRequest, address: str) -> tuple[list[Rule], Listing]:
        """The limits an answer must pass, and the allow list to ask in the same transaction (step 2
        never refuses a blocked address: its code was never sent)."""
        return check_rules(self.kit.limits, self.limit_subject(address), request, address)

    def prove(self, request: LoginRequest) -> Identity:
        kit = self.kit
        address, _ = self.address(request)
        answer = request.fields.text("otp", error="BADCODE").replace(" ", "")
        name = request.fields.text("name", error="BADREQUEST")[:128]  # before the code is spent
        rules, listing = self.check_rules(request, address)
        codes = kit.codes
        record = kit.store.check_code(
            codes.blind(address),
            request.scope,
            rules,
            request.now,
            codes.max_attempts,
            lambda digest: codes.matches(digest, address, request.scope, answer),
            failures=kit.limits.failures(self.limit_subject(address), request.client_ip, device_of(request.fields)),
            claim_seconds=kit.claim_seconds,
            listing=listing,
        )
        if record is None:
            # wrong, expired, used, unknown, attempts spent: one answer
            request.audit.note(EventName.WRONG)
            raise ApiError("BADCODE")
        request.audit.note(EventName.PROVED)
        subject = self.limit_subject(address)
        known, watch = kit.limits.known_device(subject, device_of(request.fields)), self.watch_of(address)
        # a returning user from now on, the device it came from, a code proved for its prefix
        proven = [
            kit.limits.proof(subject),
            *([known] if known else []),
            *([(watch.proved_key, watch.window)] if watch else []),
        ]
        return Identity(
            address,
            name,
            consume=lambda minted: kit.store.consume(record, proven, request.now, minted),
            release=lambda: kit.store.release(record),
            subject=subject,
        )
