"""Blocking calls that must not stop a whole gevent worker.

Under gunicorn's gevent worker (the default) every request of a process runs on one OS thread, so a
call that blocks in the kernel - waiting for another process's file lock - would stop every login
that process holds. ``blocking(call)`` runs such a call on a native thread of gevent's pool while
the request's greenlet waits cooperatively; without gevent (threads, tests, commands) it just calls.
"""

from __future__ import annotations

import socket
import sys
import threading
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


def acquire(try_once: Callable[[], bool], wait: Callable[[], None], ends: float) -> None:
    """Take a lock another process may hold: ``try_once()`` without blocking until ``ends`` (a
    ``time.monotonic()``), else TimeoutError. Under gevent, while it fails, this worker's other
    requests run and it tries again after a pause that doubles from 50 µs to 2 ms: the other
    process's hold is usually a transaction of a fraction of a millisecond. (Waiting on a native
    thread instead cost two workers a third of their CPU under load: the thread's polling fought
    the worker's own thread for the interpreter lock.) Without gevent, ``wait()`` blocks at once."""
    if try_once():
        return
    if not green():
        wait()
        return
    import gevent

    delay = 0.00005
    while not try_once():
        if time.monotonic() >= ends:
            raise TimeoutError("the lock was not free in time")
        gevent.sleep(delay)
        delay = min(delay * 2, 0.002)


def hang_up(sock: object) -> None:
    """End a connection another thread may be blocked reading (for ``within``'s ``on_timeout``):
    ``shutdown`` wakes that read at once, where ``close`` alone would not - and closing a file made
    from the socket would wait for the reader's lock."""
    if sock is None:
        return
    for step in ("shutdown", "close"):
        try:
            getattr(sock, step)(*((socket.SHUT_RDWR,) if step == "shutdown" else ()))
        except OSError:
            pass


def within(seconds: float, call: Callable[[], T], *, on_timeout: Callable[[], None] | None = None) -> T:
    """``call()``, ended within ``seconds`` in all - name resolution, connecting and every read
    together - or TimeoutError. A read timeout alone starts again with every byte, so a peer that
    trickles its answer (or a resolver that never answers) could hold a login far longer.

    Under gevent a timer interrupts the call where it waits (gevent's Timeout is a BaseException, so
    no library in between mistakes it for an error of its own and retries). Without gevent the call
    runs on a helper thread that the caller stops waiting for; ``on_timeout`` then closes what the
    call holds (its sockets), so the helper ends too instead of waiting on a trickling peer."""
    if seconds <= 0:
        raise TimeoutError("no time was left for the call")
    if green():
        import gevent

        timer = gevent.Timeout(seconds)
        timer.start()
        try:
            return call()
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise TimeoutError(f"no answer within {seconds:g} s") from None
        finally:
            timer.close()
    outcome: list[tuple[bool, object]] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="outbound-call", daemon=True).start()
    if not done.wait(seconds):
        if on_timeout is not None:
            on_timeout()
        raise TimeoutError(f"no answer within {seconds:g} s")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[return-value]
    raise value  # type: ignore[misc]
