"""How a user proves who they are. One method is chosen with ``auth.method``.

A method is a subclass of ``OneStepLogin`` (every request proves: a password, an ID token) or
``TwoStepLogin`` (step 1 starts - sends a code -, step 2 proves), built once with its own settings
(its ``Settings`` section, or None) and a ``LoginKit`` - the narrow set of services a login may
use. It answers ``prove`` (who is this?), a two-step one ``begin`` too; ``mint`` turns the proven
identity into the user's mesibo token, by ``useradd`` unless the method needs its own way (the
mesibo-managed codes hand mesibo the code to check). Raise ``ApiError`` to refuse; a limit's
``Refused`` may pass through, the API layer answers it RATELIMIT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..attestation import Gate
from ..audit import Audit
from ..codes import Codes
from ..errors import ApiError
from ..fields import Fields
from ..limits import Limits
from ..mesibo import MesiboClient
from ..messages import Texts
from ..metrics import NoMetrics
from ..phones import PhonePolicy, TestNumbers
from ..senders import Sender
from ..senders.router import Router
from ..settings import SenderSettings
from ..store import Listing, Rule, SqlStore, TokenRecord

LOGIN, DELETE_ACCOUNT = "login", "deleteaccount"


def lang_of(fields: Fields) -> str:
    """The step-1 field ``lang`` (a BCP 47 tag choosing the message's language); never an error."""
    try:
        return fields.text("lang", error="BADREQUEST")[:64]
    except ApiError:
        return ""


def device_of(fields: Fields) -> str:
    """The app's device id (the stock Android app sends its install's unique id as ``device`` with
    every proof): a device the account logged in from before keeps its way in through lock-outs.
    Anything that is no plausible id (too short, too long, control characters) counts as none."""
    try:
        device = fields.text("device", error="BADREQUEST")
    except ApiError:
        return ""
    return device if 8 <= len(device) <= 128 and device.isprintable() else ""


@dataclass(frozen=True)
class LoginRequest:
    """What a login needs from the HTTP request, without Flask."""

    fields: Fields
    appid: str
    client_ip: str
    now: int
    # what happened, for the audit trail: set ``audit.address`` once known, ``audit.note(event)``
    audit: Audit = field(default_factory=lambda: Audit(method=""))
    # what the proof is for: a login, or deleting the account (``deleteaccount``)
    purpose: str = LOGIN
    # fields a method adds to a successful answer (Kerberos: the service's mutual-authentication token)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        """What a code is good for: the app id, and for a deletion that purpose too - a login code
        never deletes an account, a deletion code never logs in (app ids hold no control characters,
        so no app id can be a deletion's scope)."""
        return self.appid if self.purpose == LOGIN else f"{self.purpose}\x1f{self.appid}"


@dataclass(frozen=True)
class Identity:
    """A proven user: the mesibo address, a display name, and what to do with a single-use proof.

    Once a token is minted the service calls ``consume(minted)`` (the code is spent, and the token's
    row - see app.tokens - kept in the same transaction); when none could be, ``release`` (the code
    works again). Methods without single-use proofs leave ``consume`` None and ``release`` a no-op.
    """

    address: str
    name: str = ""
    consume: Callable[[TokenRecord | None], None] | None = None
    release: Callable[[], None] = field(default=lambda: None)
    subject: str = ""  # what the limits count this user as, when not the address (``Login.subject_of``)


@dataclass(frozen=True)
class LoginKit:
    """What a login method may use: the store and the limit rules, the codes and their delivery,
    phone policy, metrics and the clock. Nothing else of the service."""

    store: SqlStore
    limits: Limits
    codes: Codes
    sender: Sender
    messages: SenderSettings  # the sender's name and the message text (template, app name)
    phones: PhonePolicy
    test_numbers: TestNumbers
    metrics: NoMetrics
    clock: Callable[[], float]
    mesibo: MesiboClient  # mints the token (``Login.mint``); some methods ask it more
    # how long a right code stays claimed while mesibo mints the token: longer than that call may take
    claim_seconds: int = 15
    delete_op: str = "userdel"  # the mesibo op that deletes a user (``mesibo.delete_op``)
    gate: Gate | None = None  # the CAPTCHA gate on step 1 (``[attestation]``), when there is one
    texts: Texts | None = None  # the messages' templates per language (``[messages]``)
    router: Router | None = None  # the senders per channel and their failover (``sender.routes``)


def check_rules(limits: Limits, subject: str, request: LoginRequest, address: str = "") -> tuple[list[Rule], Listing]:
    """The limits an answer (a code, a password) for ``subject`` must pass, and what to ask in the same
    transaction: the allow list (``address``, when it can be on one) and whether the app's device is
    one the account logged in from before - then only that device's own lock-out holds it."""
    device = device_of(request.fields)
    known = limits.known_device(subject, device)
    return limits.for_check(subject, request.client_ip), Listing(
        address,
        limits.for_check(subject, request.client_ip, allowed=True),
        refuse_blocked=False,
        returning=limits.for_known_device(subject, request.client_ip, device) if known else None,
        proof_key=known[0] if known else "",
    )


class Login:
    """What every login method shares: its settings, its kit, and how a proven identity becomes a
    token. Subclass ``OneStepLogin`` or ``TwoStepLogin``."""

    sends_codes: ClassVar[bool] = False  # step 1 sends the user a code (the start-up report says so)

    def __init__(self, options: Any, kit: LoginKit):
        self.options = options
        self.kit = kit

    def is_proof(self, fields: Fields) -> bool:
        """True when the request proves identity (step 2, or the one step); False for step 1."""
        raise NotImplementedError

    def begin(self, request: LoginRequest) -> dict[str, Any]:
        """Step 1: start the login (send a code); return extra answer fields. Raise ApiError to refuse."""
        raise NotImplementedError

    def prove(self, request: LoginRequest) -> Identity:
        """Check the proof and return who this is. Raise ApiError to refuse."""
        raise NotImplementedError

    def subject_of(self, typed: str, now: int) -> str | None:
        """The name the limits and the audit trail give the account a user types (for the support
        commands: ``status``, ``events``, ``unblock``); None when it cannot be one."""
        return typed.strip() or None

    def mint(self, identity: Identity, request: LoginRequest) -> str:
        """The user's mesibo token for ``request.appid``: ``useradd`` by default. A MesiboError is
        answered as mesibo's failure (the proof is released for a retry); raise ApiError for an
        answer of the method's own."""
        return self.kit.mesibo.add_user(identity.address, request.appid, name=identity.name)

    def delete(self, identity: Identity, request: LoginRequest) -> None:
        """Delete the proven user at mesibo (``deleteaccount``). A MesiboError is answered as for
        ``mint`` (the proof is released for a retry)."""
        self.kit.mesibo.delete_user(identity.address, self.kit.delete_op, appid=request.appid)


class OneStepLogin(Login):
    """Every request proves who the user is (a password, a token): there is no step 1."""

    refusal = "BADLOGIN"  # what a request without its proof is answered

    def is_proof(self, fields: Fields) -> bool:
        return True

    def begin(self, request: LoginRequest) -> dict[str, Any]:
        raise ApiError(self.refusal)  # never reached: every request is a proof


class TwoStepLogin(Login):
    """Step 1 starts (sends a code); step 2 - a request carrying ``proof_field`` - proves."""

    proof_field = "otp"

    def is_proof(self, fields: Fields) -> bool:
        return self.proof_field in fields
