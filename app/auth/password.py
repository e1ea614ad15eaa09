"""What the password-style logins share (LDAP, RADIUS, the operator's own user table): one step,
the app sends ``user`` and ``password``; the service's limits bound guessing; every way of failing
answers the same BADLOGIN."""

from __future__ import annotations

import contextlib
import importlib
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

from ..cooperative import within
from ..deadlines import remaining
from ..errors import ApiError
from ..schema import ConfigError
from ..store.audit import EventName
from . import Identity, LoginRequest, OneStepLogin, check_rules, device_of

MAX_USER_CHARS = 256
T = TypeVar("T")


class Unavailable(Exception):  # noqa: N818 - a state of the directory, answered INTERNAL
    """The directory could not be asked (down, timed out, misconfigured): not the user's fault."""


def in_time(seconds: float, what: str, call: Callable[[list[Any]], T], close: Callable[[Any], None]) -> T:
    """``call(held)`` within ``seconds`` in all, and within what is left of the request's deadline -
    name resolution, connecting and every read together - else Unavailable. ``call`` puts what it
    opens (connections, sockets) in ``held``; past the deadline each is given to ``close``, so no
    trickling server keeps a socket (or, without gevent, a helper thread) busy after the answer."""
    held: list[Any] = []

    def close_all() -> None:
        for item in held:
            with contextlib.suppress(Exception):
                close(item)

    try:
        seconds = remaining(seconds)
        return within(seconds, lambda: call(held), on_timeout=close_all)
    except TimeoutError:
        close_all()
        raise Unavailable(f"{what} did not answer within {seconds:g} s") from None


def account_subject(user: str) -> str:
    """The limits' and the trail's name for the account a user id means: Unicode compatibility
    folding (NFKC) and case folding, as directories match ids - so the look-alike forms of one id
    (fullwidth, mathematical, circled letters) all count against the same account, where they used
    to give an attacker thousands of lock-out subjects for one user."""
    return "user:" + unicodedata.normalize("NFKC", user).casefold().strip()


def requires(module: str, method: str, extra: str) -> Any:
    """Import a method's own library, or stop start-up saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError("auth.method", f"{method} needs {module}: pip install 'messenger-backend[{extra}]'") from None


class PasswordLogin(OneStepLogin):
    """Subclasses check a user id and password in ``authenticate`` and say who it is."""

    def subject_of(self, typed: str, now: int) -> str:
        return account_subject(typed)

    def authenticate(self, user: str, password: str) -> tuple[str, str] | None:
        """(mesibo address, display name) for a right user id and password, else None.
        Raise Unavailable when the directory cannot answer."""
        raise NotImplementedError

    def prove(self, request: LoginRequest) -> Identity:
        kit = self.kit
        user = request.fields.text("user", error="BADLOGIN")
        password = request.fields.text("password", error="BADLOGIN", strip=False)
        if not user or len(user) > MAX_USER_CHARS or not password:
            # an empty password must never reach a directory: LDAP takes it as an anonymous bind
            raise ApiError("BADLOGIN", detail="user or password missing")
        subject = self.subject_of(user, request.now)
        request.audit.address = subject
        rules, listing = check_rules(kit.limits, subject, request)
        kit.store.hit(rules, request.now, listing)  # hints first, then counted (a known device: its own)
        try:
            found = self.authenticate(user, password)
        except Unavailable as exc:
            raise ApiError("INTERNAL", detail=str(exc)) from None
        device = device_of(request.fields)
        if found is None:
            kit.store.count(kit.limits.failures(subject, request.client_ip, device), request.now)
            request.audit.note(EventName.WRONG)
            raise ApiError("BADLOGIN")
        address, name = found
        request.audit.note(EventName.PROVED, type(self).__name__)
        known = kit.limits.known_device(subject, device)
        if known:  # the device keeps its way in through lock-outs from now on
            kit.store.count([known], request.now)
        return Identity(address, (name or request.fields.text("name", error="BADREQUEST"))[:128], subject=subject)
