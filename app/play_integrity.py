"""Android's Play Integrity as the step-1 gate (``attestation.provider = "play_integrity"``).

The app asks Play for a standard integrity token with ``requestHash`` = the lowercase hex SHA-256 of
the ``phone`` field exactly as it sends it, and sends the token as ``attestation``. The service has
Google decode it (``POST https://playintegrity.googleapis.com/v1/<package>:decodeIntegrityToken``,
authorized with an OAuth access token for the Google Cloud service account whose JSON key file
``attestation.service_account_file`` names - the JWT-bearer grant at the key's ``token_uri``, kept
until shortly before it expires) and accepts the verdict when: it was made for this package and for
this request (its ``requestHash``, so a token fetched for one number cannot be spent on another), it
is at most ``attestation.max_age_seconds`` old, Play recognizes the app (``PLAY_RECOGNIZED``, the
package name again) and the device meets one of ``attestation.device_verdicts``.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import jwt
import requests

from .http import AnswerTooLargeError, SessionHolder, read_capped
from .schema import ConfigError

SCOPE = "https://www.googleapis.com/auth/playintegrity"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class ProviderError(Exception):
    """Google did not answer, or not as documented (the gate refuses: BADATTESTATION)."""


def request_hash(phone_field: str) -> str:
    """What the app puts in ``requestHash``: hex SHA-256 of the ``phone`` field as sent."""
    return hashlib.sha256(phone_field.encode()).hexdigest()


class PlayIntegrity:
    MAX_ANSWER_BYTES = 64 << 10

    def __init__(self, settings: Any, sessions: SessionHolder):
        self.settings = settings
        self._sessions = sessions
        self.package = settings.package_name
        if not self.package:
            raise ConfigError("attestation.package_name", "is required by attestation.provider = 'play_integrity'")
        self.account = _service_account(settings.service_account_file)
        self.url = settings.verify_url or (
            f"https://playintegrity.googleapis.com/v1/{self.package}:decodeIntegrityToken"
        )
        self._access: tuple[str, float] = ("", 0.0)  # (token, when to fetch a new one)

    def payload(self, token: str) -> dict[str, Any]:
        """Google's decoded verdict (``tokenPayloadExternal``) for an integrity token."""
        answer = self._post(
            self.url,
            json={"integrityToken": token[:16384]},
            headers={"Authorization": f"Bearer {self._access_token()}"},
        )
        if answer is None:
            self._access = ("", 0.0)  # refused: the next request fetches a new access token
            raise ProviderError("Google refused to decode the token (HTTP 4xx)")
        payload = answer.get("tokenPayloadExternal")
        if not isinstance(payload, dict):
            raise ProviderError("Google's answer holds no verdict")
        return payload

    def problem(self, payload: dict[str, Any], phone_field: str, now: float) -> str | None:
        """Why the verdict does not vouch for this request (None: it does)."""
        details = _object(payload.get("requestDetails"))
        if details.get("requestPackageName") != self.package:
            return f"made for another app ({str(details.get('requestPackageName'))[:64]})"
        if details.get("requestHash") != request_hash(phone_field):
            return "made for another request (requestHash)"
        made = str(details.get("timestampMillis", ""))
        if not made.isdigit() or abs(now * 1000 - int(made)) > self.settings.max_age_seconds * 1000:
            return "too old"
        app = _object(payload.get("appIntegrity"))
        if app.get("appRecognitionVerdict") != "PLAY_RECOGNIZED" or app.get("packageName") != self.package:
            return f"app not recognized by Play ({str(app.get('appRecognitionVerdict'))[:40]})"
        device = _object(payload.get("deviceIntegrity")).get("deviceRecognitionVerdict")
        if not isinstance(device, list) or not set(self.settings.device_verdicts) & set(map(str, device)):
            return f"device integrity not met ({', '.join(map(str, device or []))[:80] or 'no verdict'})"
        return None

    def _access_token(self) -> str:
        token, renew_at = self._access
        if token and time.monotonic() < renew_at:
            return token
        now = int(time.time())
        claims = {
            "iss": self.account["client_email"],
            "scope": SCOPE,
            "aud": self.account["token_uri"],
            "iat": now,
            "exp": now + 3600,
        }
        assertion = jwt.encode(
            claims,
            self.account["private_key"],
            algorithm="RS256",
            headers={"kid": self.account.get("private_key_id", "")},
        )
        answer = self._post(self.account["token_uri"], data={"grant_type": GRANT, "assertion": assertion}) or {}
        fetched, lifetime = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(fetched, str) or not fetched:
            raise ProviderError("Google gave no access token (check the service account)")
        seconds = lifetime if isinstance(lifetime, int) and not isinstance(lifetime, bool) else 3600
        self._access = (fetched, time.monotonic() + max(0, seconds - 60))
        return fetched

    def _post(self, url: str, **kwargs: Any) -> dict[str, Any] | None:
        """The JSON object answered; None for a refusal (4xx); ProviderError for anything else."""
        try:
            response = self._sessions.get().post(url, stream=True, **kwargs)
            read_capped(response, self.MAX_ANSWER_BYTES)
            if 400 <= response.status_code < 500:
                return None
            answer = response.json() if response.status_code == 200 else None
        except (requests.RequestException, OSError, TimeoutError, AnswerTooLargeError, ValueError) as exc:
            raise ProviderError(f"Google did not answer ({type(exc).__name__})") from None
        if not isinstance(answer, dict):
            raise ProviderError(f"Google answered HTTP {response.status_code}")
        return answer


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _service_account(path: str) -> dict[str, str]:
    """The service account's JSON key file (as the Google Cloud console hands it out)."""
    if not path:
        raise ConfigError("attestation.service_account_file", "is required by attestation.provider = 'play_integrity'")
    try:
        with open(path, encoding="utf-8") as handle:
            account = json.load(handle)
    except OSError as exc:
        raise ConfigError("attestation.service_account_file", f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError("attestation.service_account_file", f"{path} is not a JSON key file") from None
    if not isinstance(account, dict) or not all(
        isinstance(account.get(k), str) and account[k] for k in ("client_email", "private_key", "token_uri")
    ):
        raise ConfigError(
            "attestation.service_account_file",
            f"{path} lacks client_email, private_key or token_uri (a service account key?)",
        )
    return {k: v for k, v in account.items() if isinstance(v, str)}
