"""SQLite: the embedded default for one machine.

WAL lets readers work while one writer commits; a busy timeout makes concurrent writers
(several gunicorn workers, several threads) wait for the lock instead of failing; every
write transaction starts with ``BEGIN IMMEDIATE`` so it takes the write lock before it
reads, which is what makes check-then-count limits and single use atomic across processes.
Every statement runs inside a transaction that holds this process's writer lock, so one
connection per process serves all its threads, with one warm page cache; it is made in the
process that uses it, never inherited across a fork.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..cooperative import acquire, blocking, green, pause
from ..forks import PerProcess
from .base import SqlStore
from .group import GroupCommit

logger = logging.getLogger("app.store")


def path_of(url: str) -> str:
    """``sqlite:///relative.db`` -> ``relative.db``; ``sqlite:////abs/file.db`` -> ``/abs/file.db``."""
    return url[len("sqlite:///") :]


class SqliteStore(SqlStore):
    table_options = " WITHOUT ROWID"

    def __init__(self, path: str, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 5000):
        super().__init__()
        self._inode = 0
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._conn = PerProcess(self._connect, close=lambda conn: conn.close())
        self._lock = PerProcess(self._new_lock, close=lambda lock: lock.close())
        self._group = PerProcess(lambda: GroupCommit(self._transaction, sqlite3.Error))
        self._folder = os.path.dirname(os.path.abspath(path))  # made, owner-only, when first needed

    def _new_lock(self) -> _WriterLock:
        os.makedirs(self._folder, mode=0o700, exist_ok=True)
        return _WriterLock(self.path + ".lock", self.busy_timeout_ms / 1000)

    def _connect(self) -> sqlite3.Connection:
        os.makedirs(self._folder, mode=0o700, exist_ok=True)
        # SQLite does not wait for its lock by itself: _begin waits, for what is left of the
        # transaction's turn (and under gevent on a native thread, not the worker's one OS thread).
        # made owner-only before SQLite opens it, whoever starts the service with whatever umask
        # (SQLite gives its -wal and -shm files the database file's mode)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 0")
        self._use_wal(conn)
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        # SQLite's default page cache (2 MB): the hot rows are the last minutes' codes and counters,
        # and a larger cache only grew every worker's memory (8 MB measured no faster).
        # After a checkpoint the WAL is cut back to this size: a long reader (a backup, an operator's
        # shell) lets it grow, and without a limit it never shrinks again.
        conn.execute(f"PRAGMA journal_size_limit = {self.WAL_LIMIT_BYTES}")
        self._inode = os.stat(self.path).st_ino  # the file this process's connection writes to
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL (it stays so). The switch needs a moment alone with the file and
        SQLite does not wait for that on its own, so processes that open a new database together
        take turns here."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            if mode.lower() != "wal":
                raise RuntimeError(f"SQLite at {self.path} refused WAL mode (got {mode})")
            return

    @contextlib.contextmanager
    def _transaction(self, migration: bool = False) -> Iterator[Any]:
        with self._lock.get() as ends:
            reopened = not self._same_file()
            if reopened:  # deleted or replaced: this process's connection writes to a file nobody reads
                logger.warning("the database file %s was deleted or replaced: opening it anew", self.path)
                self._conn.close()
                self._inode = 0
            conn = self._conn.get()  # one per process, only ever used under the writer lock
            cur = conn.cursor()
            try:
                self._begin(cur, ends)
                if reopened and not migration:
                    self._migrate_in(cur)  # a file made anew gets its schema in the same transaction
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                cur.close()
                raise
            try:
                yield cur
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
            finally:
                cur.close()

    def _atomically(self, work: Callable[[Any], Any]) -> Any:
        """Under gevent, in a transaction shared with the worker's other concurrent writes (group
        commit, app.store.group); with threads, one of its own."""
        return self._group.get().run(work) if green() else super()._atomically(work)

    def _begin(self, cur: Any, ends: float) -> None:
        """BEGIN IMMEDIATE; when a process outside this service's writer lock (a backup, an operator's
        shell) holds SQLite's own lock, wait for it until ``ends`` - the same turn the writer lock
        was waited for, so one transaction waits ``busy_timeout_ms`` in all - under gevent on a
        native thread, so the worker's other requests go on meanwhile."""
        try:
            cur.execute("BEGIN IMMEDIATE")  # the connection's own busy timeout is 0
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise

        def wait() -> None:
            left_ms = int((ends - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise sqlite3.OperationalError("database is locked (by a process outside this service)")
            cur.execute(f"PRAGMA busy_timeout = {left_ms}")
            try:
                cur.execute("BEGIN IMMEDIATE")
            finally:
                cur.execute("PRAGMA busy_timeout = 0")

        blocking(wait)

    def close(self) -> None:
        self._lock.close()
        self._conn.close()

    def _same_file(self) -> bool:
        """Whether the file at the path is the one this process's connection writes to (one stat)."""
        if not self._inode:
            return True  # no connection yet: the next one opens whatever is there
        try:
            return os.stat(self.path).st_ino == self._inode
        except OSError:
            return False

    def _generation(self, cur: Any = None) -> int:
        """The time of the last unblock, from a file beside the database: one stat, no lock, shared
        by every process on the machine (SQLite is one machine's store)."""
        try:
            return os.stat(self.path + ".generation").st_mtime_ns
        except FileNotFoundError:
            return 0

    def _generation_changed(self) -> None:
        with os.fdopen(os.open(self.path + ".generation", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as marker:
            marker.write(f"{time.time_ns()}\n")
        now = time.time_ns()
        os.utime(self.path + ".generation", ns=(now, now))

    WAL_LIMIT_BYTES = 4 << 20

    # Less free space than this and a commit may fail: SQLite needs room for the WAL to grow.
    MIN_FREE_BYTES = 8 << 20

    def unready(self, within: float) -> str | None:
        folder = os.path.dirname(os.path.abspath(self.path))
        missing = not os.path.exists(self.path)  # the next write makes it anew (see _transaction)
        for name in (self.path, self.path + "-wal", folder):
            if os.path.exists(name) and not os.access(name, os.W_OK):
                return f"{'the database folder' if name == folder else 'the database file'} is not writable"
        if shutil.disk_usage(folder).free < self.MIN_FREE_BYTES:
            return "the disk is full"
        if missing:
            return None
        return blocking(lambda: self._write_probe(within))

    def _write_probe(self, within: float) -> str | None:
        """Whether a write could start within ``within`` seconds: SQLite's write lock taken and given
        back on a connection of its own (never this service's writer lock, which its own writes hold
        for well under a millisecond; a backup or a shell holding SQLite's lock is what this finds)."""
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=within, isolation_level=None)
            ) as conn:
                conn.execute("SELECT 1 FROM codes LIMIT 1").fetchall()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                return f"the database is locked by another process for more than {within:g} s"
            if "readonly" in text:
                return "the database file is not writable"
            return f"the database cannot be written ({type(exc).__name__})"
        return None


class _WriterLock:
    """Writers take turns on a lock file before ``BEGIN IMMEDIATE``.

    SQLite's own busy handler polls: a writer that finds the database locked sleeps 1, 2, 5,
    10... ms before trying again, so under load most of a request's time is spent asleep while
    the lock is free. Threads here queue on a mutex and processes on ``flock``, which wake the
    next writer the moment the lock is released. The busy timeout stays as the safety net for
    writers that do not use this lock. Under gevent a process that finds the lock taken by another
    tries again cooperatively, its other requests running meanwhile (app.cooperative.acquire): a
    blocking ``flock`` on the worker's one OS thread stopped every other login of that worker.
    """

    WAITED_TOO_LONG = "database is locked (waited for another process's writer lock)"

    def __init__(self, path: str, timeout: float):
        self._mutex = threading.Lock()
        self.path = path
        self._fd = self._open()
        self.timeout = timeout

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._fd_inode = os.fstat(fd).st_ino  # an open file keeps its inode: one stat per turn, not two
        return fd

    def __enter__(self) -> float:
        """Wait for this writer's turn; returns when the turn's waiting must end (for _begin).

        Bounded like SQLite's own busy timeout: a write never waits longer for its turn (the
        writers of this process queue here, those of other processes on the lock file)."""
        ends = time.monotonic() + self.timeout
        if not self._mutex.acquire(timeout=self.timeout):
            raise sqlite3.OperationalError("database is locked (waited for this process's writer lock)")
        try:
            while True:
                try:
                    acquire(self._try_flock, lambda: self._wait_flock(ends), ends)
                except TimeoutError:
                    raise sqlite3.OperationalError(self.WAITED_TOO_LONG) from None
                if self._still_the_file():
                    return ends
                # the lock file was deleted or replaced: a process that opens it now locks another
                # file, so this one would exclude nobody - take the lock on the file at the path
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = self._open()
        except BaseException:
            self._mutex.release()
            raise

    def _still_the_file(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self._fd_inode
        except FileNotFoundError:
            return False

    def _wait_flock(self, ends: float) -> None:
        """Another process holds the lock file (a long write, a backup): try again every millisecond
        until ``ends`` (flock itself cannot wait with a timeout)."""
        while not self._try_flock():
            if time.monotonic() >= ends:
                raise sqlite3.OperationalError(self.WAITED_TOO_LONG)
            pause(0.001)

    def _try_flock(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process holds it
            return False
        return True

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._mutex.release()

    def close(self) -> None:
        os.close(self._fd)
