"""What the store keeps and answers: a code, a limit rule, a listing to ask about, a refusal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CodeRecord:
    address: str
    appid: str
    digest: str
    expires_at: int
    attempts: int = 0


@dataclass(frozen=True)
class TokenRecord:
    """A minted user token as the store keeps it (app.tokens): its keyed hash, its owner's (the
    address's keyed hash), the address sealed with the token, the app id, and until when."""

    key: str
    owner: str
    sealed: str
    appid: str
    expires_at: int


@dataclass(frozen=True)
class Rule:
    """One limit: at most ``limit`` events per ``window`` seconds for ``key``.

    ``count`` is False for a rule that is only checked here (the event is counted elsewhere,
    e.g. the failure lock-out that wrong answers feed).
    """

    key: str
    limit: int
    window: int
    count: bool = True


@dataclass(frozen=True)
class Watch:
    """A destination prefix watched for SMS pumping (automatic quarantine): sends to it, codes
    proved by it and messages its providers' receipts say never arrived are counted over ``window``;
    once at least ``min_sends`` went out and less than ``min_proved_percent`` of them were proved -
    or ``max_undelivered_percent`` (when not 0) or more were undelivered - new numbers of the prefix
    get no code for ``hold`` seconds (numbers that proved a code before still do)."""

    prefix: str
    window: int
    min_sends: int
    min_proved_percent: int
    hold: int
    max_undelivered_percent: int = 0

    @property
    def undelivered_key(self) -> str:
        return f"q-undelivered:{self.prefix}"

    @property
    def sent_key(self) -> str:
        return f"q-sent:{self.prefix}"

    @property
    def proved_key(self) -> str:
        return f"q-proved:{self.prefix}"

    @property
    def quarantine_key(self) -> str:
        return f"quarantine:{self.prefix}"

    @property
    def keys(self) -> list[str]:
        """Every counter of the prefix: released, it starts afresh (the old counts would quarantine
        it again at the next send)."""
        return [self.quarantine_key, self.sent_key, self.proved_key, self.undelivered_key]


@dataclass(frozen=True)
class Listing:
    """Ask the operator's block and allow lists about ``address`` inside the request's own transaction:
    an allowed address is counted against ``allowed`` instead of the usual rules; a blocked one is
    refused (``Blocked``) when ``refuse_blocked``. An address that proved a code before (its
    ``proof_key`` counter lives) is counted against ``returning`` when given."""

    address: str
    allowed: Sequence[Rule]
    refuse_blocked: bool = True
    returning: Sequence[Rule] | None = None
    proof_key: str = ""
    # a send to a watched prefix: refused while it is quarantined, else counted, and the prefix
    # quarantined when this send makes its proved share too low ("quarantined" is then added to
    # ``outcome``, for the caller's audit trail and metrics)
    watch: Watch | None = None
    outcome: list[str] = field(default_factory=list)


class Blocked(Exception):  # noqa: N818 - an operator's decision, not a fault
    """The address is on the operator's block list, or its prefix is quarantined (``quarantined``)."""

    def __init__(self, address: str, quarantined: str = ""):
        super().__init__(address)
        self.quarantined = quarantined


class Refused(Exception):  # noqa: N818 - a refusal is an answer, not a fault
    """A limit refused the request: ``key`` names the rule and its subject, ``retry_after`` the wait."""

    def __init__(self, key: str, retry_after: int):
        super().__init__(f"{key} (retry after {retry_after}s)")
        self.key = key
        self.retry_after = retry_after

    @property
    def kind(self) -> str:
        """The rule without its subject, for logs and metrics (``send-ip:1.2.3.4`` -> ``send-ip``)."""
        return self.key.split(":", 1)[0]
