"""The gate in front of step 1: a CAPTCHA token proving a person asks for the code, or an app's
attestation - Android's Play Integrity, Apple's App Attest - proving a real install of the app on a
real device does.

Off by default. With ``attestation.provider`` set, step 1 (a login's or a deletion's, whatever sends
a code) must carry the provider's token in the field ``attestation``; the service asks the
provider's verify endpoint - Cloudflare Turnstile, hCaptcha and Google reCAPTCHA all answer the same
``siteverify`` form (secret, response, remoteip -> ``success``, ``hostname``, ``action``, ``score``,
``error-codes``); Play Integrity is app.play_integrity, App Attest app.app_attest (checked here,
with a challenge the service hands out in every refusal) - before any limit is counted or any
message sent. A missing or refused token, or a provider that does not answer, is ``BADATTESTATION``. Test
numbers pass without one (they send nothing). SMS pumping is run by scripts: a token each costs them
what it costs a person, or a genuine device and app.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import requests

from .app_attest import AppAttest, Challenges
from .errors import ApiError
from .http import AnswerTooLargeError, SessionHolder, read_capped
from .play_integrity import PlayIntegrity, ProviderError
from .schema import ConfigError, between, one_of, optional_url, setting
from .store import Refused, Rule

logger = logging.getLogger("app.attestation")

# Each provider's documented verify endpoint.
VERIFY_URLS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "hcaptcha": "https://api.hcaptcha.com/siteverify",
    "recaptcha": "https://www.google.com/recaptcha/api/siteverify",
}


@dataclasses.dataclass(frozen=True)
class AttestationSettings:
    """A CAPTCHA or app-attestation gate on step 1 (off by default): the field ``attestation`` carries
    the token."""

    provider: str = setting(
        "",
        "'' (off), turnstile, hcaptcha, recaptcha (v2, or v3 with min_score), "
        "play_integrity (Android) or app_attest (iOS).",
        check=one_of("", "turnstile", "hcaptcha", "recaptcha", "play_integrity", "app_attest"),
    )
    secret: str = setting("", "The CAPTCHA provider's secret key for your site. Secret.", secret=True)
    verify_url: str = setting(
        "",
        "The verify endpoint (empty: the provider's own; for play_integrity Google's "
        "decodeIntegrityToken of package_name).",
        check=optional_url,
    )
    package_name: str = setting("", "play_integrity: the Android app's package name (com.example.chat).")
    service_account_file: str = setting(
        "",
        "play_integrity: the JSON key file of the Google Cloud service account "
        "allowed to decode the app's tokens (Play Console, linked project).",
    )
    device_verdicts: list[str] = setting(
        ["MEETS_DEVICE_INTEGRITY"],
        "play_integrity: the device must meet one of "
        "these (MEETS_STRONG_INTEGRITY, MEETS_DEVICE_INTEGRITY, "
        "MEETS_BASIC_INTEGRITY, MEETS_VIRTUAL_INTEGRITY).",
    )
    max_age_seconds: int = setting(
        300,
        "play_integrity: the oldest token accepted; app_attest: how long a challenge is good for.",
        check=between(10, 3600),
    )
    apple_app_id: str = setting("", "app_attest: the App ID, TEAMID.bundle.id (ABCDE12345.com.example.chat).")
    apple_root_file: str = setting(
        "",
        "app_attest: Apple's App Attestation root certificate (PEM), as downloaded "
        "from https://www.apple.com/certificateauthority/.",
    )
    apple_environment: str = setting(
        "production",
        "app_attest: production, or development for builds signed for development.",
        check=one_of("production", "development"),
    )
    hostnames: list[str] = setting([], "Accept tokens solved on these hostnames only (empty: any).")
    actions: list[str] = setting([], "Accept tokens made for these actions only (Turnstile, reCAPTCHA v3; empty: any).")
    min_score: float = setting(
        0.0, "Lowest score accepted (reCAPTCHA v3, hCaptcha Enterprise; 0: not checked).", check=between(0, 1)
    )
    timeout: float = setting(
        2.5, "Seconds to wait for the provider's answer, and at most as long to connect.", check=between(0.5, 30)
    )
    ca_file: str = setting(
        "",
        "CA bundle that signs the provider's certificate - a proxy or an on-premise verifier (empty: "
        "REQUESTS_CA_BUNDLE if set, else the usual trusted CAs).",
    )


class Gate:
    """Asks the provider whether a step-1 token is good; ``enabled`` is False when no provider is set."""

    MAX_ANSWER_BYTES = 64 << 10

    def __init__(self, settings: AttestationSettings, key: bytes = b"", store: Any = None):
        self.settings = settings
        self.enabled = bool(settings.provider)
        self._sessions = SessionHolder(
            (min(3.05, settings.timeout), settings.timeout),
            ca_file=settings.ca_file,
            user_agent="messenger-backend-python attestation",
        )
        self.play = PlayIntegrity(settings, self._sessions) if settings.provider == "play_integrity" else None
        self.apple = AppAttest(settings) if settings.provider == "app_attest" else None
        self.challenges = Challenges(key, settings.max_age_seconds)
        self._store = store  # spends App Attest's challenges
        if self.enabled and not self.play and not self.apple and not settings.secret:
            raise ConfigError("attestation.secret", f"is required by attestation.provider = {settings.provider!r}")
        self.url = settings.verify_url or VERIFY_URLS.get(settings.provider, "")

    def check(self, token: str, client_ip: str, phone_field: str, now: float) -> None:
        """Return when the provider vouches for ``token`` (for Play Integrity: made for this request -
        the ``phone`` field as sent - at most max_age_seconds before ``now``); else raise
        ApiError("BADATTESTATION")."""
        if self.apple is not None:
            self._app_attest(token, phone_field, now)
            return
        if not token:
            raise ApiError("BADATTESTATION", detail="no attestation token")
        if self.play is not None:
            try:
                problem = self.play.problem(self.play.payload(token), phone_field, now)
            except ProviderError as exc:
                logger.warning("attestation provider play_integrity: %s", exc)
                raise ApiError("BADATTESTATION", detail=str(exc)) from None
        else:
            problem = self._problem(self._verdict(token, client_ip))
        if problem:
            raise ApiError("BADATTESTATION", detail=problem)

    def _app_attest(self, token: str, phone_field: str, now: float) -> None:
        """App Attest: a verified attestation spends its challenge; every refusal hands out a new one."""
        assert self.apple is not None
        challenge, problem = self.apple.problem(token, phone_field, self.challenges, now) if token else ("", "")
        if problem is None:
            try:
                self._store.hit([Rule(Challenges.key(challenge), 1, self.settings.max_age_seconds)], int(now))
                return
            except Refused:
                problem = "the challenge was used before"
        raise ApiError(
            "BADATTESTATION", detail=problem or "no attestation token", extra={"challenge": self.challenges.issue(now)}
        )

    def _verdict(self, token: str, client_ip: str) -> dict[str, Any]:
        form = {"secret": self.settings.secret, "response": token[:4096], "remoteip": client_ip}
        try:
            response = self._sessions.get().post(self.url, data=form, stream=True)
            read_capped(response, self.MAX_ANSWER_BYTES)
            answer = response.json() if response.status_code == 200 else None
        except (requests.RequestException, OSError, TimeoutError, AnswerTooLargeError, ValueError) as exc:
            # the provider not answering refuses the code: the gate is there because scripts pump SMS
            logger.warning("attestation provider %s did not answer (%s)", self.settings.provider, type(exc).__name__)
            raise ApiError("BADATTESTATION", detail=f"the provider did not answer ({type(exc).__name__})") from None
        if not isinstance(answer, dict):
            raise ApiError("BADATTESTATION", detail=f"the provider answered HTTP {response.status_code}")
        return answer

    def _problem(self, verdict: dict[str, Any]) -> str | None:
        """Why the verdict is not good enough (None: it is)."""
        settings = self.settings
        if verdict.get("success") is not True:
            codes = verdict.get("error-codes")
            return f"refused by the provider ({', '.join(map(str, codes)) if isinstance(codes, list) else 'no reason'})"
        if settings.hostnames and verdict.get("hostname") not in settings.hostnames:
            return f"solved on another hostname ({str(verdict.get('hostname'))[:64]})"
        if settings.actions and verdict.get("action") not in settings.actions:
            return f"made for another action ({str(verdict.get('action'))[:64]})"
        if settings.min_score:
            score = verdict.get("score")
            if not isinstance(score, (int, float)) or isinstance(score, bool) or score < settings.min_score:
                return f"score {score!r} below {settings.min_score}"
        return None
