"""What every store does, in SQL both engines speak; the engines supply connections and locking.

``codes`` holds one live code per (address, appid) as an HMAC digest, with its expiry, the answers
tried and a claim; ``counters`` holds fixed-window counters for the limits. Every operation that
must be atomic runs in one transaction (``_transaction``); single use rests on the claim an
``UPDATE`` takes (``check_code``). A limit that refuses raises ``Refused``: nothing is counted then.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .audit import AuditQueries
from .hints import RefusalHints
from .housekeeping import Housekeeping
from .quarantine import QuarantineQueries
from .records import Blocked, CodeRecord, Listing, Refused, Rule, TokenRecord
from .sql import BUMP, BUMP_MANY, MIGRATIONS, SCHEMA_VERSION
from .tokens import TokenQueries

logger = logging.getLogger("app.store")


class SqlStore(AuditQueries, TokenQueries, QuarantineQueries, Housekeeping, abc.ABC):
    """The store: limits, codes, housekeeping and schema. An engine provides ``_transaction`` (a cursor
    in one transaction, committed when the block ends, rolled back when it raises) and ``close``."""

    placeholder = "?"
    table_options = ""

    def __init__(self) -> None:
        # refusal hints of this process (see _counted) and the time of its last tidy
        self._hints = RefusalHints()
        self._last_tidy = 0

    @abc.abstractmethod
    def _transaction(self, migration: bool = False) -> contextlib.AbstractContextManager[Any]:
        """A cursor in one transaction; ``migration`` also takes the engine's schema lock."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close this process's connections (the next call opens new ones)."""

    @abc.abstractmethod
    def unready(self, within: float) -> str | None:
        """Why a login could not be stored now (None: it could), found within ``within`` seconds and
        without the writer lock - for /readyz."""

    def _sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _exec(self, cur: Any, statement: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self._sql(statement), tuple(params))
        return cur

    # -- limits ---------------------------------------------------------------

    def _apply_rules(self, cur: Any, rules: Sequence[Rule], now: int) -> Refused | None:
        """Count every counting rule and check all of them; the caller rolls back on a refusal.

        Two statements whatever the number of rules: one multi-row upsert counts, one select reads
        the check-only rules. All rules are evaluated so the answer carries the longest wait.
        """
        counting = [rule for rule in rules if rule.limit > 0 and rule.count]
        checking = [rule for rule in rules if rule.limit > 0 and not rule.count]
        state: dict[str, tuple[int, int]] = {}
        if counting:
            values = ", ".join("(?, 1, ?)" for _ in counting)
            params: list[Any] = []
            for rule in counting:
                params += [rule.key, now + rule.window]
            rows = self._exec(cur, BUMP_MANY.format(values=values), [*params, now, now]).fetchall()
            state.update((key, (count, expires_at)) for key, count, expires_at in rows)
        if checking:
            marks = ", ".join("?" for _ in checking)
            rows = self._exec(
                cur,
                f"SELECT key, count, expires_at FROM counters WHERE key IN ({marks})",
                [rule.key for rule in checking],
            ).fetchall()
            state.update((key, (count, expires_at)) for key, count, expires_at in rows)
        worst: Refused | None = None
        for rule in counting + checking:
            count, expires_at = state.get(rule.key, (0, now))
            # a counted event is over when it exceeds the limit; a checked one when the limit is reached
            over = count > rule.limit if rule.count else (expires_at > now and count >= rule.limit)
            if over:
                self._hints.remember(rule.key, expires_at, now, lambda: self._generation(cur))
                wait = max(1, int(expires_at - now))
                if worst is None or wait > worst.retry_after:
                    worst = Refused(rule.key, wait)
        return worst

    def _counted(
        self,
        rules: Sequence[Rule],
        now: int,
        work: Callable[[Any, Sequence[Rule]], Any] = lambda cur, rules: rules,
        listing: Listing | None = None,
    ) -> Any:
        """The one counting path (``hit``, ``issue`` and ``check_code`` all come here): this process's
        refusal hints first (a flood stops before the database); then ask the block and allow lists
        (``listing``), count the rules that then apply and, if none refuses, do ``work(cursor, rules
        counted)`` - all in one transaction - and return what it returned. A refusal or a block rolls
        the transaction back (nothing counted, nothing done) and is raised."""
        self.precheck(rules, now, listing)

        def transaction(cur: Any) -> Any:
            applied = rules
            if listing is not None:
                kind = self._policy(cur, listing.address)
                if kind == "block" and listing.refuse_blocked:
                    raise Blocked(listing.address)
                if kind == "allow":
                    applied = listing.allowed
                elif listing.returning is not None and self._live(cur, listing.proof_key, now):
                    applied = listing.returning
                elif listing.watch and self._live(cur, listing.watch.quarantine_key, now):
                    raise Blocked(listing.address, quarantined=listing.watch.prefix)
            refusal = self._apply_rules(cur, applied, now)
            if refusal:
                raise refusal
            if listing is not None and listing.watch and self._watch_send(cur, listing.watch, now):
                listing.outcome.append("quarantined")
            return work(cur, applied)

        return self._atomically(transaction)

    def _atomically(self, work: Callable[[Any], Any]) -> Any:
        """``work(cursor)`` in one transaction: committed when it returns, rolled back when it raises.
        The write of a login step comes here; an engine may run several concurrent requests' work in
        one transaction (SQLite under gevent: app.store.group), each still all or nothing."""
        with self._transaction() as cur:
            return work(cur)

    def precheck(self, rules: Sequence[Rule], now: int, listing: Listing | None = None) -> None:
        """Refused, from this process's refusal hints (RefusalHints), when a rule refused very lately -
        a flood stops here, before the database - on the rules that hold whether or not the address
        is a returning one: a hint that new numbers are refused must not refuse a returning user."""
        hinted = rules if listing is None or listing.returning is None else [r for r in rules if r in listing.returning]
        self._hints.check(hinted, now, self._generation)

    def hit(self, rules: Sequence[Rule], now: int, listing: Listing | None = None) -> Sequence[Rule]:
        """Count an event against every rule, all or nothing; raise Refused when one refuses, Blocked
        when ``listing`` finds its address blocked. Returns the rules counted (an allowed address's)."""
        return self._counted(rules, now, listing=listing)

    def give_back(self, rules: Sequence[Rule], now: int) -> None:
        """Undo one counted event (a send that failed must not lock the user out)."""
        self._hints.forget(rules)
        with self._transaction() as cur:
            for rule in rules:
                if rule.count and rule.limit > 0:
                    self._exec(
                        cur,
                        "UPDATE counters SET count = count - 1 WHERE key = ? AND count > 0 AND expires_at > ?",
                        (rule.key, now),
                    )

    def count(self, counters: Sequence[tuple[str, int]], now: int) -> list[int]:
        """Count one event against each counter (key, window) with no limit - e.g. a wrong answer that
        feeds the lock-out rules - in one transaction; returns the counts in their windows."""
        with self._transaction() as cur:
            return [self._exec(cur, BUMP, (key, now + window, now, now)).fetchall()[0][0] for key, window in counters]

    # -- codes ----------------------------------------------------------------

    def issue(
        self, code: CodeRecord, rules: Sequence[Rule], now: int, listing: Listing | None = None
    ) -> Sequence[Rule]:
        """Count the send against the rules and store the code (replacing any older one), in one
        transaction with the block/allow lookup; raise Refused when a rule refuses, Blocked when the
        address is blocked. Returns the rules counted (to give back if the send fails)."""

        def store(cur: Any, counted: Sequence[Rule]) -> Sequence[Rule]:
            self._exec(
                cur,
                """INSERT INTO codes (address, appid, digest, expires_at, attempts) VALUES (?, ?, ?, ?, 0)
                   ON CONFLICT (address, appid) DO UPDATE SET
                       digest = excluded.digest, expires_at = excluded.expires_at, attempts = 0, claimed_until = 0""",
                (code.address, code.appid, code.digest, code.expires_at),
            )
            return counted

        return self._counted(rules, now, store, listing)

    def check_code(
        self,
        address: str,
        appid: str,
        rules: Sequence[Rule],
        now: int,
        max_attempts: int,
        matches: Callable[[str], bool],
        failures: Sequence[tuple[str, int]] = (),
        claim_seconds: int = 15,
        listing: Listing | None = None,
    ) -> CodeRecord | None:
        """Check an answer against the live code, in one transaction: the code, or None.

        The rules are checked and counted (Refused when one refuses), one attempt is spent on the
        code (spending it before comparing is what makes ``max_attempts`` hold under concurrency),
        and ``matches(digest)`` compares the answer. A right answer *claims* the code for
        ``claim_seconds`` and returns it: while claimed no other answer can have it (so exactly one
        of many concurrent right answers gets it); the caller then ``consume``s it once the token is
        minted, or ``release``s it. If the caller dies in between, the claim lapses and the code
        works again while it lives - a crash never costs the user the code. A wrong answer counts
        ``failures`` (key, window). None: the answer is wrong, or there is no live code. The allow
        list (``listing``) is asked in the same transaction.
        """

        def check(cur: Any, counted: Sequence[Rule]) -> CodeRecord | None:
            # fetchall, not fetchone: SQLite cannot commit while a RETURNING statement is unfinished
            rows = self._exec(
                cur,
                """UPDATE codes SET attempts = attempts + 1
                   WHERE address = ? AND appid = ? AND expires_at > ? AND attempts < ? AND claimed_until <= ?
                   RETURNING digest, expires_at, attempts""",
                (address, appid, now, max_attempts, now),
            ).fetchall()
            if not rows:
                return None
            code = CodeRecord(address, appid, *rows[0])
            if not matches(code.digest):
                for key, window in failures:
                    self._exec(cur, BUMP, (key, now + window, now, now)).fetchall()
                return None
            self._exec(
                cur,
                "UPDATE codes SET claimed_until = ? WHERE address = ? AND appid = ?",
                (now + claim_seconds, address, appid),
            )
            return code

        return self._counted(rules, now, check, listing)

    def consume(
        self, code: CodeRecord, proven: Sequence[tuple[str, int]] = (), now: int = 0, minted: TokenRecord | None = None
    ) -> None:
        """The claimed code did its work (a token was minted): delete it (a newer code is kept), mark
        what the proof showed - ``proven``, counters (key, window): the address proved a code, the
        device it came from - and keep the token's row (``minted``, for logout), in one transaction."""

        def transaction(cur: Any) -> None:
            self._remember(cur, minted)
            for key, window in proven:
                self._exec(cur, BUMP, (key, now + window, now, now)).fetchall()
            self._exec(
                cur,
                "DELETE FROM codes WHERE address = ? AND appid = ? AND digest = ?",
                (code.address, code.appid, code.digest),
            )

        self._atomically(transaction)

    def release(self, code: CodeRecord) -> None:
        """Give a claimed code back (mesibo failed), its successful try not held against it."""
        with self._transaction() as cur:
            self._exec(
                cur,
                """UPDATE codes SET claimed_until = 0, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
                   WHERE address = ? AND appid = ? AND digest = ?""",
                (code.address, code.appid, code.digest),
            )

    def ping(self) -> None:
        with self._transaction() as cur:
            cur.execute("SELECT 1")

    def schema_version(self) -> int:
        with self._transaction() as cur:
            self._exec(cur, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            return self._exec(cur, "SELECT MAX(version) FROM schema_version").fetchone()[0] or 0

    def migrate(self, target: int = SCHEMA_VERSION) -> tuple[int, int]:
        """Bring the schema to ``target``; safe when several processes start at once."""
        with self._transaction(migration=True) as cur:
            return self._migrate_in(cur, target)

    def _migrate_in(self, cur: Any, target: int = SCHEMA_VERSION) -> tuple[int, int]:
        self._exec(cur, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = self._exec(cur, "SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        for version in range(current + 1, target + 1):
            for statement in MIGRATIONS[version - 1]:
                self._exec(cur, statement.format(table_options=self.table_options))
            self._exec(cur, "INSERT INTO schema_version (version) VALUES (?)", (version,))
        return current, max(current, target)
