"""Group commit: several requests' writes in one SQLite transaction, each still all-or-nothing.

Under gevent a worker holds many logins at once on one OS thread, and each login step writes once
(the counters and the code, or the claim, or the consume). A commit is most of what a write costs -
the writer lock, ``BEGIN``, and at ``COMMIT`` every page the transaction touched appended to the WAL -
and concurrent logins touch the same pages (the global send counter, the newest end of each expiry
index). So the first request to write opens a batch and lets the worker's other greenlets run once
(and, while the lock is held by another process, for as long as it waits): every request that
reaches its write meanwhile joins. Then one transaction runs them in order, each under a savepoint
of its own - a refusal or an error in one rolls back its work only -, commits once, and each request
gets its own outcome only after that commit: nothing is answered, and no code sent, before what it
counted is durable, exactly as with a transaction per request. A failed commit fails every request
of the batch, none of whose writes were kept.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Member:
    __slots__ = ("work", "done", "result", "error")

    def __init__(self, work: Callable[[Any], Any]):
        self.work = work
        self.done = threading.Event()  # gevent's, once the standard library is patched
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommit:
    """One per process: ``run(work)`` is ``work(cursor)`` in a transaction it may share with the
    other greenlets' writes. ``transaction`` is the store's own (its writer lock, its BEGIN IMMEDIATE,
    its commit); ``fatal`` the errors after which the transaction itself is lost (the database's)."""

    def __init__(self, transaction: Callable[[], contextlib.AbstractContextManager[Any]], fatal: type[Exception]):
        self._transaction = transaction
        self._fatal = fatal
        self._open: list[_Member] | None = None

    def run(self, work: Callable[[Any], T]) -> T:
        member = _Member(work)
        if self._open is not None:  # a batch is gathering: join it, and wait for its commit
            self._open.append(member)
            member.done.wait()
            return member.outcome()  # type: ignore[no-any-return]
        batch = self._open = [member]
        try:
            import gevent

            gevent.sleep(0)  # the worker's other requests run up to their own write, and join
            self._commit(batch)
        except BaseException as exc:  # the transaction failed as a whole: nothing of it was kept
            for each in batch:
                each.result, each.error = None, exc
        finally:
            if self._open is batch:
                self._open = None
            for each in batch[1:]:
                each.done.set()
        return member.outcome()  # type: ignore[no-any-return]

    def _commit(self, batch: list[_Member]) -> None:
        with self._transaction() as cur:  # waiting for the writer lock, the batch still gathers
            self._open = None  # closed: whoever comes now starts the next one
            for each in batch:
                cur.execute("SAVEPOINT member")
                try:
                    each.result = each.work(cur)
                except self._fatal:
                    raise  # the database failed: the whole transaction goes
                except Exception as exc:  # a refusal, a block, a bug: this request's work only
                    cur.execute("ROLLBACK TO member")
                    each.error = exc
                cur.execute("RELEASE member")
