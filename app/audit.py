"""The audit trail: what happened to each login, kept so an operator can look a user up - without
keeping addresses in clear (a keyed hash to find one, a masked form to show it), codes or tokens."""

from __future__ import annotations

import atexit
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .forks import PerProcess
from .metrics import NoMetrics
from .schema import between, setting
from .store.audit import Event, EventName

logger = logging.getLogger("app.audit")


@dataclass(frozen=True)
class AuditSettings:
    """The audit trail of login events (see README, "Operating it")."""

    enabled: bool = setting(True, "Keep a record of login events: code asked, sent, refused, proved, token minted.")
    retention_days: int = setting(30, "Days an event is kept (then purged with the rest).", check=between(1, 3650))
    flush_seconds: float = setting(
        1.0,
        "Events are gathered and written this often, many to a commit (0: each request writes its own at once).",
        check=between(0, 60),
    )


def masked(address: str) -> str:
    """A form of the address to show, not to know: ``18005551234`` -> ``1800•••••34``,
    ``ann@example.org`` -> ``a••@example.org``."""
    if not address:
        return ""
    name, at, domain = address.partition("@")
    if at:
        return name[:1] + "•" * max(2, len(name) - 1) + "@" + domain
    keep = 4 if len(address) > 8 else 1
    return address[:keep] + "•" * max(2, len(address) - keep - 2) + address[-2:]


class Auditor:
    """Turns a request's noted events into rows (the key makes the lookup hash useless without it)
    and writes them: at once, or - the default - gathered by a thread of each worker and written
    every ``audit.flush_seconds``, many rows to one commit, so a login does not pay a commit of its
    own for its trail. A crash loses at most that much of the trail; a clean stop writes it all."""

    MAX_WAITING = 10000  # rows; more than that and the request that adds them writes them itself

    def __init__(self, key: bytes, settings: AuditSettings, store: Any, metrics: NoMetrics | None = None):
        self._key = hmac.new(key, b"messenger-backend audit trail", hashlib.sha256).digest()
        self.enabled = settings.enabled
        self.keep_seconds = settings.retention_days * 86400
        self.flush_seconds = settings.flush_seconds
        self._store = store
        self._metrics = metrics or NoMetrics()
        self._waiting: list[Event] = []
        self._lock = threading.Lock()
        self._writer = PerProcess(self._start_writer)

    def write(self, rows: Sequence[Event]) -> None:
        if not self.flush_seconds:  # at once, with any rows an earlier write failed for
            with self._lock:
                pending, self._waiting = self._waiting + list(rows), []
            try:
                self._store.record(pending, self.keep_seconds)
            except Exception:
                self._keep(pending)
                raise
            return
        self._writer.get()
        with self._lock:
            self._waiting.extend(rows)
            full = len(self._waiting) >= self.MAX_WAITING
        if full:
            self.flush()

    def flush(self) -> None:
        """Write what is waiting (also at the process's exit). Rows a write failed for (the store
        locked, the disk full) stay waiting for the next flush, up to ``MAX_WAITING``; both are
        counted in ``messenger_audit_events_unwritten`` (an alert rule watches it)."""
        with self._lock:
            rows, self._waiting = self._waiting, []
        if rows:
            try:
                self._store.record(rows, self.keep_seconds)
            except Exception:  # the trail must never take a worker down
                logger.warning("could not write %d audit events; they wait for the next try", len(rows), exc_info=True)
                self._keep(rows)

    def forget(self, subjects: Sequence[str]) -> None:
        """Drop this process's unwritten events about these subjects (an account being deleted)."""
        with self._lock:
            self._waiting = [row for row in self._waiting if row.subject not in subjects]

    def _keep(self, rows: list[Event]) -> None:
        """Put unwritten rows back in front of the newer ones; beyond MAX_WAITING the oldest go."""
        with self._lock:
            waiting = rows + self._waiting
            dropped = max(0, len(waiting) - self.MAX_WAITING)
            self._waiting = waiting[dropped:]
        self._metrics.audit_unwritten("retried", len(rows) - dropped)
        if dropped:
            self._metrics.audit_unwritten("dropped", dropped)
            logger.error("dropped %d audit events that could not be written", dropped)

    def _start_writer(self) -> threading.Thread:
        """This process's writer (a thread inherited across a fork does not run in the child)."""
        with self._lock:
            self._waiting = []  # rows a parent had not written yet are the parent's to write

        def run() -> None:
            while True:
                time.sleep(self.flush_seconds)
                self.flush()

        thread = threading.Thread(target=run, name="audit-writer", daemon=True)
        thread.start()
        atexit.register(self.flush)
        return thread

    def subject(self, address: str) -> str:
        """The lookup key of an address: the same for every request and node, not reversible."""
        return hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()[:32] if address else ""


@dataclass
class Audit:
    """The events of one request, written together when it ends (one statement)."""

    method: str
    client_ip: str = ""
    request_id: str = ""
    appid: str = ""
    address: str = ""  # who the request is about, once the login method knows
    noted: list[tuple[str, str, str]] = field(default_factory=list)  # (event, detail, message id)

    def note(self, event: EventName, detail: str = "", message_id: str = "") -> None:
        self.noted.append((event, detail, message_id))

    def rows(self, auditor: Auditor, now: int) -> list[Event]:
        subject, shown = auditor.subject(self.address), masked(self.address)
        return [
            Event(
                now,
                subject,
                shown,
                event,
                detail[:200],
                self.method,
                self.appid[:256],
                self.client_ip,
                self.request_id,
                message_id[:128],
            )
            for event, detail, message_id in self.noted
        ]
