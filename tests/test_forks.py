"""Per-process resources: a fork (gunicorn's preload) never shares a connection, a session or a lock."""

from __future__ import annotations

import os
import threading

from app.forks import PerProcess


def in_child(action) -> str:
    """Run ``action`` in a forked child and return what it wrote."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, str(action()).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        return pipe.read()


def test_a_forked_process_makes_its_own_value():
    holder = PerProcess(os.getpid)
    assert holder.get() == os.getpid()
    child_made = in_child(holder.get)
    assert child_made not in ("", str(os.getpid()))
    assert holder.get() == os.getpid()  # the parent's value is untouched


def test_close_never_closes_an_inherited_value():
    closed = []
    holder = PerProcess(os.getpid, close=closed.append)
    holder.get()
    assert in_child(lambda: (holder.close(), len(closed))[1]) == "0"
    holder.close()
    assert closed == [os.getpid()]


def test_made_once_however_many_threads_ask():
    made = []
    holder = PerProcess(lambda: made.append(1) or len(made))
    barrier = threading.Barrier(16)

    def ask():
        barrier.wait()
        holder.get()

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == [1]
