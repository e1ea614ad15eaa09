"""Refusals this process has just seen, so a flood is answered without touching the database."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .records import Refused, Rule


class RefusalHints:
    """A refusal seen by this process is remembered for a few seconds, so a flood of requests a limit
    refuses is answered without touching the database (no read, no write lock). A hint can only err
    towards refusing, for at most ``SECONDS`` after a slot was given back by another process; it never
    lets a request past a limit: every request that passes here is still decided by the store's
    transaction. Plain dict operations: safe under the GIL for the threads of one worker."""

    SECONDS = 5
    MAX = 10000

    def __init__(self) -> None:
        self._hints: dict[str, tuple[int, int]] = {}  # rule key -> (hint ends, window ends)
        # The store's generation when the hints were taken: an operator's unblock bumps it, and a
        # hint from an older generation must not refuse anyone (the unblock works at once).
        self.generation: int | None = None

    def check(self, rules: Sequence[Rule], now: int, generation: Callable[[], int]) -> None:
        """Raise the longest Refused that a live hint for one of the rules gives - after asking
        ``generation()`` (cheap, only when a hint applies) that no unblock made the hints void."""
        worst: Refused | None = None
        for rule in rules:
            hint = self._hints.get(rule.key)
            if hint is not None and hint[0] > now and rule.limit > 0:
                wait = max(1, int(hint[1] - now))
                if worst is None or wait > worst.retry_after:
                    worst = Refused(rule.key, wait)
        if worst:
            current = generation()
            if current != self.generation:
                self._hints.clear()
                self.generation = current
                return
            raise worst

    def remember(self, key: str, window_end: int, now: int, generation: Callable[[], int]) -> None:
        if self.generation is None:
            self.generation = generation()
        if len(self._hints) >= self.MAX:
            self._hints.clear()
        self._hints[key] = (min(window_end, now + self.SECONDS), window_end)

    def forget(self, rules: Sequence[Rule]) -> None:
        for rule in rules:
            self._hints.pop(rule.key, None)
