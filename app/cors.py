"""Cross-origin answers for browsers (the mesibo web app on another origin).

Hand-written rather than flask-cors: the service has one endpoint and one rule - a list of
allowed origins, reflected with ``Vary: Origin`` - which is a dozen lines, where flask-cors would
add a dependency and a per-request resolver for options this service never uses.
"""

from __future__ import annotations

import re

from .schema import ConfigError

ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")


def origins_problem(origins: list[str]) -> str | None:
    """Why a list of allowed origins is wrong (for the setting's check), or None."""
    if not origins:
        return 'must name at least one origin, or be ["*"]'
    if "*" in origins and len(origins) > 1:
        return '"*" allows every origin: it cannot be listed with others'
    for origin in origins:
        if origin != "*" and not ORIGIN.fullmatch(origin):
            return f"{origin!r} is not an origin (scheme://host[:port], no path or trailing slash)"
    return None


class Cors:
    """The CORS headers: the same on every answer, plus the allowed origin for a request's Origin."""

    def __init__(self, origins: list[str], max_age: int):
        problem = origins_problem(origins)
        if problem:
            raise ConfigError("server.cors_origins", problem)
        self.any = origins == ["*"]
        self.allowed = frozenset(origins)
        self.headers = [
            ("Access-Control-Allow-Methods", "POST, OPTIONS"),
            # X-Request-ID: a page may send its own and read ours (to quote it to support)
            ("Access-Control-Allow-Headers", "Content-Type, X-Request-ID"),
            ("Access-Control-Expose-Headers", "X-Request-ID"),
            # a user who takes minutes to type the code costs no second preflight
            ("Access-Control-Max-Age", str(max_age)),
        ]
        if self.any:
            self.headers.append(("Access-Control-Allow-Origin", "*"))
        else:
            self.headers.append(("Vary", "Origin"))  # the answer depends on the Origin: caches must know

    def refuses(self, origin: str | None, fetch_site: str | None) -> bool:
        """Whether a browser request comes from a page the operator did not allow: an ``Origin`` not
        on the list (``null`` included), or - a browser that sent none - ``Sec-Fetch-Site:
        cross-site``. Such a page could not read the answer, but without this check its POST would
        still send a code (a ``text/plain`` body needs no preflight). The apps send neither header.
        With ``["*"]`` every origin is allowed."""
        if self.any:
            return False
        if origin is not None:
            return origin not in self.allowed
        return fetch_site == "cross-site"

    def for_origin(self, origin: str | None) -> list[tuple[str, str]]:
        """The Allow-Origin header for this Origin: reflected when allowed, none otherwise."""
        if self.any or not origin or origin not in self.allowed:
            return []
        return [("Access-Control-Allow-Origin", origin)]
