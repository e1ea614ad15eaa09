"""A total deadline for an outbound HTTP call, not only a timeout per read.

A read timeout starts again with every byte, so a peer that trickles its answer one byte at a
time - or sends its headers and then nothing - could hold a login far past the timeouts. Inside
``deadline(seconds)``, every connect and every read of this thread's HTTP connections (made by
``DeadlineAdapter``) waits at most what is left of ``seconds``, then fails as a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError

from .cooperative import within

_local = threading.local()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Calls made in this block end, at the latest, ``seconds`` from now (nested: the earlier wins)."""
    outer = getattr(_local, "ends", None)
    ends = time.monotonic() + seconds
    _local.ends = ends if outer is None else min(outer, ends)
    try:
        yield
    finally:
        _local.ends = outer


def remaining(seconds: float) -> float:
    """``seconds``, or what is left of this thread's deadline when that is less (TimeoutError when
    nothing is): the total an outbound call inside a request may take."""
    left = _remaining(seconds)
    return seconds if left is None else left


def _remaining(timeout: float | None) -> float | None:
    """What is left of the deadline (at most ``timeout``); raises socket.timeout when nothing is."""
    ends = getattr(_local, "ends", None)
    if ends is None:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise TimeoutError("the call's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineSocket:
    """A socket whose every read waits at most what is left of the deadline."""

    def __init__(self, sock: Any):
        self._sock = sock
        self._timeout = sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._sock.settimeout(_remaining(self._timeout))
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._sock.settimeout(_remaining(self._timeout))
        return self._sock.recv(bufsize, flags)

    def makefile(self, mode: str = "r", buffering: int | None = None, **_: Any) -> Any:
        """A binary reader that reads through this wrapper (http.client reads answers from it)."""
        import io

        self._sock._io_refs += 1  # as socket.makefile does, so closing the file closes cleanly
        raw = socket.SocketIO(self, "rb" if "r" in mode else "wb")  # type: ignore[arg-type]
        return io.BufferedReader(raw, buffering or io.DEFAULT_BUFFER_SIZE) if "r" in mode else raw


class _Deadlines:
    """Connect within what is left of the deadline; wrap the socket so reads keep to it."""

    timeout: Any
    sock: Any

    def _new_conn(self) -> socket.socket:
        # name resolution too: getaddrinfo has no timeout of its own (a resolver that never answers
        # held a call 10 s against a 3 s deadline)
        try:
            self.timeout = _remaining(self.timeout)
            limit = self.timeout if isinstance(self.timeout, (int, float)) else 30.0
            return within(limit, super()._new_conn)  # type: ignore[misc]
        except TimeoutError:
            raise ConnectTimeoutError(self, "no connection within the deadline (name resolution included)") from None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock = _DeadlineSocket(self.sock)


class DeadlineHTTPConnection(_Deadlines, HTTPConnection):
    pass


class DeadlineHTTPSConnection(_Deadlines, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = DeadlineHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = DeadlineHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections keep to ``deadline()`` (direct and through a proxy)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager
