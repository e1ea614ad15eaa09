"""How a user proves who they are. One method is chosen with ``auth.method``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..fields import Fields

if TYPE_CHECKING:
    from ..services import Services


@dataclass(frozen=True)
class LoginRequest:
    """What a login handler needs from the HTTP request, without Flask."""

    fields: Fields
    appid: str
    client_ip: str
    now: int


@dataclass(frozen=True)
class Identity:
    """A proven user: the mesibo address, a display name, and how to undo the proof.

    ``release`` gives a consumed proof back (the code becomes usable again) when the
    token could not be minted; methods without single-use proofs leave it a no-op.
    """

    address: str
    name: str = ""
    release: Callable[[], None] = field(default=lambda: None)


class AuthMethod(Protocol):
    def is_proof(self, fields: Fields) -> bool:
        """True when the request proves identity (step 2); False for a request to start (step 1)."""
        ...

    def begin(self, request: LoginRequest, services: Services) -> dict[str, Any]:
        """Step 1: start the login (send a code); return extra answer fields. Raise ApiError to refuse."""
        ...

    def prove(self, request: LoginRequest, services: Services) -> Identity:
        """Step 2: check the proof and return who this is. Raise ApiError to refuse."""
        ...


# The built-in methods by name; anything else is taken as module:Class. Imported only when chosen.
METHODS = {
    "phone": "app.auth.phone:PhoneLogin",
    "email": "app.auth.email:EmailLogin",
    "oidc": "app.auth.oidc:OidcLogin",
}


def build_method(config: Any) -> AuthMethod:
    """The login method named by ``auth.method``: phone, email, oidc, or ``module:Class``."""
    from ..config import load_object

    name = config["auth.method"]
    return load_object(METHODS.get(name, name), "auth.method")(config)
