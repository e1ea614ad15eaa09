"""How a user proves who they are. One method is chosen with ``auth.method``.

A method is built once with its own settings (its ``Settings`` section, or None) and a
``LoginKit`` - the narrow set of services a login may use - and then answers two calls:
``begin`` (step 1, e.g. send a code) and ``prove`` (step 2, who is this?). Raise ``ApiError``
to refuse; a limit's ``Refused`` may pass through, the API layer answers it RATELIMIT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..audit import Audit
from ..codes import Codes
from ..fields import Fields
from ..limits import Limits
from ..metrics import NoMetrics
from ..phones import PhonePolicy, TestNumbers
from ..senders import Sender
from ..settings import SenderSettings
from ..store import SqlStore


@dataclass(frozen=True)
class LoginRequest:
    """What a login needs from the HTTP request, without Flask."""

    fields: Fields
    appid: str
    client_ip: str
    now: int
    # what happened, for the audit trail: set ``audit.address`` once known, ``audit.note(event)``
    audit: Audit = field(default_factory=lambda: Audit(method=""))


@dataclass(frozen=True)
class Identity:
    """A proven user: the mesibo address, a display name, and what to do with a single-use proof.

    Once a token is minted the service calls ``consume`` (the code is spent); when none could be,
    ``release`` (the code works again). Methods without single-use proofs leave both no-ops.
    ``otp`` is a code for mesibo to check when it mints (mesibo-managed codes); when mesibo refuses
    it, the service calls ``refused`` (a wrong answer) and answers BADCODE.
    """

    address: str
    name: str = ""
    consume: Callable[[], None] = field(default=lambda: None)
    release: Callable[[], None] = field(default=lambda: None)
    otp: str = ""
    refused: Callable[[], None] = field(default=lambda: None)


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
    mesibo: Any = None  # the mesibo client, for methods that let mesibo manage the codes
    # how long a right code stays claimed while mesibo mints the token: longer than that call may take
    claim_seconds: int = 15


class LoginMethod(Protocol):
    def is_proof(self, fields: Fields) -> bool:
        """True when the request proves identity (step 2); False for a request to start (step 1)."""
        ...

    def begin(self, request: LoginRequest) -> dict[str, Any]:
        """Step 1: start the login (send a code); return extra answer fields. Raise ApiError to refuse."""
        ...

    def prove(self, request: LoginRequest) -> Identity:
        """Step 2: check the proof and return who this is. Raise ApiError to refuse."""
        ...
