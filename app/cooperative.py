"""Blocking calls that must not stop a whole gevent worker.

Under gunicorn's gevent worker (the default) every request of a process runs on one OS thread, so a
call that blocks in the kernel - waiting for another process's file lock - would stop every login
that process holds. ``blocking(call)`` runs such a call on a native thread of gevent's pool while
the request's greenlet waits cooperatively; without gevent (threads, tests, commands) it just calls.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def green() -> bool:
    """Whether the standard library is gevent's here (gunicorn.conf.py patches it for the gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def blocking(call: Callable[[], T]) -> T:
    """``call()``, on a native thread when this process runs gevent."""
    if not green():
        return call()
    import gevent

    return gevent.get_hub().threadpool.apply(call)


def pause(seconds: float) -> None:
    """Sleep this OS thread: the real sleep even under gevent (for code that runs in ``blocking``)."""
    if green():
        from gevent import monkey

        monkey.get_original("time", "sleep")(seconds)
    else:
        time.sleep(seconds)


def acquire(try_once: Callable[[], bool], wait: Callable[[], None], yields: int = 20) -> None:
    """Take a lock another process may hold: ``try_once()`` without blocking; under gevent, while it
    fails, let this worker's other requests run (a yield each time) and try again - the other
    process's hold is usually a transaction of a fraction of a millisecond - and after ``yields``
    tries wait on a native thread (``wait()``); without gevent, ``wait()`` at once."""
    if try_once():
        return
    if green():
        import gevent

        for _ in range(yields):
            gevent.sleep(0)
            if try_once():
                return
    blocking(wait)
