"""What the HTTP senders share: the session, the config checks, and turning failures into SendError."""

from __future__ import annotations

import logging
from typing import Any

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from ..http import AnswerTooLargeError, SessionHolder, read_capped
from ..schema import ConfigError
from ..settings import SenderSettings
from .base import BaseSender, SendError

logger = logging.getLogger("app.senders")


def _reason(exc: BaseException) -> BaseException | None:
    """What urllib3 says stopped a connection (requests wraps it: ConnectionError(MaxRetryError(reason)))."""
    inner = exc.args[0] if exc.args else None
    return inner.reason if isinstance(inner, MaxRetryError) else inner if isinstance(inner, BaseException) else None


def require(section: str, options: Any, *names: str) -> None:
    """Stop start-up when one of these settings of a sender's section is empty."""
    for name in names:
        if not getattr(options, name):
            key = name.rstrip("_")  # from_ is the key "from"
            raise ConfigError(f"{section}.{key}", f"is required by sender {section.rpartition('.')[2]!r}")


class HttpSender(BaseSender):
    """Base of the senders that call a provider's HTTP API."""

    provider = "http"

    def __init__(self, options: Any, common: SenderSettings):
        super().__init__(options, common)
        self._sessions = SessionHolder((3.05, common.timeout), ca_file=common.ca_file)

    # Providers answer a few hundred bytes; more is not an answer from them.
    MAX_ANSWER_BYTES = 1 << 20

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        """POST within the timeouts (name resolution included), no redirects, the answer read in
        full within them and at most MAX_ANSWER_BYTES of it."""
        try:
            response = self._sessions.get().post(url, stream=True, **kwargs)
            read_capped(response, self.MAX_ANSWER_BYTES)
            return response
        except (requests.ConnectTimeout, NewConnectionError) as exc:  # never connected: nothing went out
            raise SendError(f"cannot reach {self.provider} ({type(exc).__name__})", provider_code="network") from None
        except (requests.Timeout, TimeoutError, Urllib3Timeout):
            # The provider may have the message: no retry, or the user could get two SMS.
            raise SendError(
                f"{self.provider} did not answer in time", provider_code="timeout", maybe_sent=True
            ) from None
        except requests.ConnectionError as exc:
            # refused or unresolvable before anything was sent, or lost after the request went out
            sent = not isinstance(_reason(exc), (NewConnectionError, NameResolutionError))
            raise SendError(
                f"cannot reach {self.provider} ({type(exc).__name__})", provider_code="network", maybe_sent=sent
            ) from None
        except (requests.RequestException, Urllib3Error, OSError, AnswerTooLargeError) as exc:
            raise SendError(
                f"{self.provider} failed ({type(exc).__name__})", provider_code="network", maybe_sent=True
            ) from None

    @staticmethod
    def json_of(response: requests.Response) -> dict[str, Any]:
        try:
            value = response.json()
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
