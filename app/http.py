"""Outbound HTTP: one ``requests.Session`` per worker process per client, a default timeout and a
total deadline (connect + read timeout) on every call, and a retry policy that only repeats what
cannot have reached the other side."""

from __future__ import annotations

import os
import urllib.request
from typing import Any

import requests
from urllib3.util.retry import Retry

from .deadlines import DeadlineAdapter, deadline
from .forks import PerProcess


def connect_only_retry() -> Retry:
    return Retry(
        total=2,
        connect=2,  # the request never left: safe to try again, even for a POST
        read=0,  # the other side may have acted on it (minted a token, sent an SMS): never resend
        status=0,  # an HTTP error is an answer, not a reason to ask again
        other=0,
        backoff_factor=0.1,  # 0.1 s, then 0.2 s: rides out a blip without keeping the user waiting
        allowed_methods=None,  # the connect-only counts above are what make any method safe here
        raise_on_status=False,
    )


def total(timeout: Any) -> float:
    """The whole time a call with this (connect, read) timeout may take."""
    return float(sum(timeout)) if isinstance(timeout, tuple) else float(timeout)


class TimeoutSession(requests.Session):
    """A session whose calls get ``timeout`` unless they pass their own (a plain Session has none),
    and end within connect + read timeout in all, however slowly the other side answers."""

    def __init__(self, timeout: Any):
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        # a redirect could take a request - and the credentials in it - to another host
        kwargs.setdefault("allow_redirects", False)
        with deadline(total(kwargs["timeout"])):
            return super().request(method, url, **kwargs)


class AnswerTooLargeError(Exception):
    """The other side's answer is larger than it can be (a misrouted URL, a broken proxy)."""


def read_capped(response: requests.Response, limit: int) -> None:
    """Read a streamed answer's body - at most ``limit`` bytes of it - inside the caller's deadline,
    so a huge answer cannot fill the worker's memory; AnswerTooLargeError past the limit. Read errors
    (urllib3's, the socket's) are the caller's to map."""
    try:
        body = response.raw.read(limit + 1, decode_content=True)
    finally:
        response.close()
    if len(body) > limit:
        raise AnswerTooLargeError(f"the answer is larger than {limit} bytes")
    response._content = body


def trusted_cas(ca_file: str = "") -> str | bool:
    """What certificates to trust: the configured CA file, else REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE
    (as requests would read them, though our sessions skip its environment lookups), else the
    default bundle (True)."""
    return ca_file or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


class SessionHolder:
    """One session per process (see app.forks), with the retry policy and a default timeout."""

    def __init__(
        self,
        timeout: Any,
        *,
        ca_file: str = "",
        pool_maxsize: int = 64,
        user_agent: str = "messenger-backend-python",
    ):
        self.verify = trusted_cas(ca_file)
        self.timeout = timeout
        self.pool_maxsize = pool_maxsize
        self.user_agent = user_agent
        self._session = PerProcess(self._make, close=lambda session: session.close())

    def _make(self) -> TimeoutSession:
        session = TimeoutSession(self.timeout)
        adapter = DeadlineAdapter(max_retries=connect_only_retry(), pool_maxsize=self.pool_maxsize)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers["User-Agent"] = self.user_agent
        # requests reads proxy variables and ~/.netrc from the environment on every call, a
        # large part of its cost; when no proxy is configured there is nothing to read.
        session.trust_env = bool(urllib.request.getproxies())
        session.verify = self.verify
        return session

    def get(self) -> TimeoutSession:
        return self._session.get()
