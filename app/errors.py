"""The contract's error codes, the one error type that carries them, and the answer envelope.

No Flask here: the API layer (``app.api``) turns an ApiError, a refusal by a limit, or any
unexpected exception into the envelope, in one place.
"""

from __future__ import annotations

from typing import Any

# code -> a short human text (sent only when server.error_message_text is on)
CODES = {
    "BADREQUEST": "The request body is too large, or not a JSON object or form.",
    "BADORIGIN": "The request comes from a web page on an origin this service does not allow.",
    "NOOP": "The request has no op.",
    "BADOP": "Unknown op.",
    "MISSINGAPPID": "The appid is missing.",
    "BADAPPID": "This service does not serve that appid.",
    "BADPHONE": "The phone number is missing, not valid, or not allowed here.",
    "BADCODE": "The code is wrong, expired or already used.",
    # used only by the optional e-mail and OpenID Connect logins (the stock apps never see them)
    "BADEMAIL": "The e-mail address is missing or not valid.",
    "BADTOKEN": "The ID token is missing, invalid or expired.",
    # the password-style logins (LDAP, RADIUS, the operator's own user table): one answer for all
    "BADLOGIN": "The user id or password is wrong, or the account cannot log in.",
    "BADATTESTATION": "The attestation (CAPTCHA, Play Integrity or App Attest) token is missing or was refused.",
    "BADCHANNEL": "The channel is unknown or not offered here.",
    "RATELIMIT": "Too many requests; try again later.",
    "SENDFAIL": "The code could not be delivered.",
    "BADUSER": "mesibo refused to create the user.",
    "BADAPP": "The server could not reach mesibo or its app token was refused.",
    "INTERNAL": "Internal error.",
}


class ApiError(Exception):
    """A failure answered to the client with one of the contract's error codes - with HTTP 200, as
    the apps expect, unless a protocol asks for another status and headers (``http_status``,
    ``headers``: a Negotiate challenge is a 401 with ``WWW-Authenticate``)."""

    def __init__(
        self,
        code: str,
        *,
        retry_after: int | None = None,
        detail: str = "",
        http_status: int = 200,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        if code not in CODES:
            raise ValueError(f"unknown error code {code}")
        super().__init__(detail or code)
        self.code = code
        self.retry_after = retry_after
        self.detail = detail
        self.http_status = http_status
        self.headers = headers or {}
        self.extra = extra or {}  # more fields for the answer (App Attest's next challenge)


def envelope(op: str, payload: dict[str, Any] | None, *, now: float) -> dict[str, Any]:
    """A successful answer: op, ts (the service's clock), result OK and the payload's fields."""
    body: dict[str, Any] = {"op": op, "ts": int(now), "result": "OK"}
    if payload:
        body.update(payload)
    return body


def failure(op: str, error: ApiError, *, now: float, message_text: bool = False) -> dict[str, Any]:
    """A failed answer: op, ts (the service's clock), result FAIL, error and (for RATELIMIT) retry_after."""
    body: dict[str, Any] = {"op": op, "ts": int(now), "result": "FAIL", "error": error.code}
    if error.retry_after is not None:
        body["retry_after"] = max(1, int(error.retry_after))
    body.update((name, value) for name, value in error.extra.items() if name not in body)
    if message_text:
        body["message_text"] = CODES[error.code]
    return body
