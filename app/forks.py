"""Things made in the process that uses them.

gunicorn may build the app in its master and fork workers from it (``preload_app``). A socket, a
database connection or a lock file inherited across a fork would be shared by processes that
know nothing of each other, so every such resource is made lazily, once per process, here.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    def __init__(self, make: Callable[[], T], close: Callable[[T], None] | None = None):
        self._make = make
        self._close = close
        self._value: T | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        """This process's value, made on first use (by one thread, however many ask at once)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._value = self._make()
                    self._pid = os.getpid()
        return self._value  # type: ignore[return-value]

    def close(self) -> None:
        """Close the value if this process made it (never one inherited), and forget it."""
        with self._lock:
            if self._value is not None and self._pid == os.getpid() and self._close is not None:
                self._close(self._value)
            self._value, self._pid = None, None

    def __del__(self) -> None:
        # an app (a test's, a command's) that is dropped closes what it opened: a connection left to
        # the garbage collector is a ResourceWarning from Python 3.13 on. Never an error of its own
        # (at interpreter exit what close needs may be gone already).
        with contextlib.suppress(Exception):
            self.close()
