"""What the HTTP senders share: the session, the config checks, and turning failures into SendError."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests

from ..config import ConfigError
from ..http import SessionHolder

logger = logging.getLogger("app.senders")


def require(config: Mapping[str, Any], *keys: str) -> None:
    for key in keys:
        if not config.get(key):
            raise ConfigError(key, f"is required by sender {config['sender.name']!r}")


class HttpSender:
    """Base of the senders that call a provider's HTTP API."""

    provider = "http"

    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self._sessions = SessionHolder((3.05, config["sender.timeout"]))

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        from .base import SendError

        try:
            return self._sessions.get().post(url, **kwargs)
        except requests.Timeout:
            # The provider may have the message: no retry, or the user could get two SMS.
            raise SendError(f"{self.provider} did not answer in time", provider_code="timeout") from None
        except requests.RequestException as exc:
            raise SendError(f"cannot reach {self.provider} ({type(exc).__name__})", provider_code="network") from None

    @staticmethod
    def json_of(response: requests.Response) -> dict[str, Any]:
        try:
            value = response.json()
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
