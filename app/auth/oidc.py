"""Sign in with Google, Apple or any OpenID Connect provider: the app sends an ID token.

The token's signature is checked against the provider's published keys (JWKS, fetched
through the discovery document unless configured, cached, and fetched again when a token
names a key id we do not know - that is how providers rotate keys), then its issuer,
audience, expiry and, when the app sends one, its nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from ..errors import ApiError
from ..http import AnswerTooLargeError, SessionHolder, read_capped
from ..schema import ConfigError, between, one_of, setting
from ..store.audit import EventName
from . import Identity, LoginKit, LoginRequest, OneStepLogin

logger = logging.getLogger("app.auth.oidc")

# A token naming an unknown key may make us fetch the JWKS again, but not more often than this:
# otherwise anyone could make the service hammer the provider with made-up key ids.
MIN_REFETCH_SECONDS = 60


# The key type each family of algorithms signs with (a JWK without "alg" names only its type).
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def _same_family(key_type: str, algorithm: str) -> bool:
    return _KEY_TYPES.get(algorithm[:2]) == key_type


class JwksCache:
    def __init__(self, issuer: str, jwks_url: str, max_age: int, sessions: SessionHolder):
        self.issuer = issuer.rstrip("/")
        self.jwks_url = jwks_url
        self.max_age = max_age
        self.sessions = sessions
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    # A discovery document or a key set is a few kilobytes.
    MAX_ANSWER_BYTES = 1 << 20

    def _get(self, url: str) -> Any:
        """GET a JSON document within the session's timeouts (name resolution included), no redirects,
        at most MAX_ANSWER_BYTES of it."""
        answer = self.sessions.get().get(url, stream=True)
        read_capped(answer, self.MAX_ANSWER_BYTES)
        answer.raise_for_status()
        return answer.json()

    def _jwks_url(self) -> str:
        if not self.jwks_url:
            self.jwks_url = self._get(f"{self.issuer}/.well-known/openid-configuration")["jwks_uri"]
        return self.jwks_url

    def _fetch(self, now: float) -> None:
        keys = {}
        for entry in self._get(self._jwks_url()).get("keys", []):
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type we cannot use; the others still count
            if key.key_id:
                keys[key.key_id] = key
        self._keys = keys
        self._fetched_at = now

    def key(self, kid: str, now: float) -> jwt.PyJWK | None:
        with self._lock:
            age = now - self._fetched_at
            stale = age > self.max_age
            unknown = kid not in self._keys and age > MIN_REFETCH_SECONDS
            if stale or unknown:
                try:
                    self._fetched_at = now  # a failed fetch also waits before the next try
                    self._fetch(now)
                except (
                    requests.RequestException,
                    Urllib3Error,
                    OSError,
                    ValueError,
                    KeyError,
                    TypeError,
                    AttributeError,
                    AnswerTooLargeError,
                ) as exc:
                    logger.warning("cannot fetch the provider's signing keys: %s", type(exc).__name__)
            return self._keys.get(kid)


@dataclass(frozen=True)
class OidcSettings:
    """The OpenID Connect login (``[auth.oidc]``)."""

    issuer: str = setting("", "OpenID Connect issuer (https://accounts.google.com, https://appleid.apple.com).")
    audience: list[str] = setting([], "Accepted audiences: your OAuth client ids.")
    jwks_url: str = setting("", "JWKS URL (empty: from the issuer's discovery document).")
    algorithms: list[str] = setting(["RS256", "ES256"], "Accepted signature algorithms.")
    address_claim: str = setting(
        "sub", "Claim that becomes the mesibo address: sub or email.", check=one_of("sub", "email")
    )
    address_prefix: str = setting("", "Prefix for that address (e.g. 'google:').")
    leeway_seconds: int = setting(30, "Clock skew allowed on exp/iat/nbf.", check=between(0, 300))
    jwks_cache_seconds: int = setting(
        3600, "How long fetched signing keys are trusted before a refresh.", check=between(60, 86400)
    )
    timeout: float = setting(
        5.0,
        "Seconds to wait for the provider's discovery document or signing keys "
        "(after at most 3 s to connect; name resolution included).",
        check=between(0.5, 30),
    )
    ca_file: str = setting(
        "",
        "CA bundle that signs the provider's certificate (empty: REQUESTS_CA_BUNDLE if "
        "set, else the usual trusted CAs).",
    )

    def worst_seconds(self) -> float:
        return min(3.05, self.timeout) + self.timeout

    def validate(self) -> None:
        if not self.issuer:
            raise ConfigError("auth.oidc.issuer", "is required by auth.method = oidc")
        if not self.audience:
            raise ConfigError("auth.oidc.audience", "is required by auth.method = oidc (your OAuth client ids)")


class OidcLogin(OneStepLogin):
    channel = "oidc"
    section = "auth.oidc"
    Settings = OidcSettings
    refusal = "BADTOKEN"

    def __init__(self, options: OidcSettings, kit: LoginKit):
        super().__init__(options, kit)
        self.issuer = options.issuer
        self.audience = list(options.audience)
        self.algorithms = list(options.algorithms)
        self.address_claim = options.address_claim
        self.prefix = options.address_prefix
        self.leeway = options.leeway_seconds
        sessions = SessionHolder((min(3.05, options.timeout), options.timeout), ca_file=options.ca_file)
        self.keys = JwksCache(self.issuer, options.jwks_url, options.jwks_cache_seconds, sessions)

    def verify(self, token: str, now: float, nonce: str = "") -> dict[str, Any]:
        """The token's claims, or ApiError(BADTOKEN) - whatever the token's shape."""
        try:
            header = jwt.get_unverified_header(token)
            algorithm, kid = header.get("alg"), header.get("kid", "")
        except (jwt.InvalidTokenError, AttributeError, TypeError, ValueError):
            raise ApiError("BADTOKEN", detail="not a JWT") from None
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise ApiError("BADTOKEN", detail=f"algorithm {str(algorithm)[:20]} not accepted")
        key = self.keys.key(str(kid), now)
        if key is None:
            raise ApiError("BADTOKEN", detail="unknown signing key")
        if key.algorithm_name != algorithm and not _same_family(str(key.key_type), algorithm):
            # an ES256 header naming an RSA key: PyJWT fails on the key itself (it was INTERNAL)
            raise ApiError("BADTOKEN", detail=f"the signing key is not a {algorithm} key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:  # any shape: BADTOKEN
            raise ApiError("BADTOKEN", detail=type(exc).__name__) from None
        if nonce:
            claimed = str(claims.get("nonce", ""))
            hashed = hashlib.sha256(nonce.encode()).hexdigest()  # Apple puts the SHA-256 of the app's nonce
            if not (hmac.compare_digest(claimed, nonce) or hmac.compare_digest(claimed, hashed)):
                raise ApiError("BADTOKEN", detail="nonce mismatch")
        return claims

    def prove(self, request: LoginRequest) -> Identity:
        self.kit.store.hit([self.kit.limits.per_address(request.client_ip)], request.now)
        token = request.fields.text("id_token", error="BADTOKEN")
        if not token:
            raise ApiError("BADTOKEN")
        claims = self.verify(token, request.now, request.fields.text("nonce", error="BADTOKEN"))
        if self.address_claim == "email":
            verified = claims.get("email_verified")
            if not claims.get("email") or verified not in (True, "true"):
                raise ApiError("BADTOKEN", detail="no verified e-mail in the token")
            subject = str(claims["email"]).lower()
        else:
            subject = str(claims["sub"])
        name = str(claims.get("name") or request.fields.text("name", error="BADREQUEST"))[:128]
        request.audit.address = self.prefix + subject
        request.audit.note(EventName.PROVED, "id token")
        return Identity(self.prefix + subject, name)
