"""When to start again a process that died: at once the first time, then ever more slowly while
it keeps dying (1 s, 2 s, 4 s, … up to a ceiling), and at once again after it stayed up a while.

Pure, so it is tested alone; `mesh up` keeps one per service and one per nats-server it runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    first: float = 1.0  # the wait before the second restart in a row
    ceiling: float = 30.0
    forgive_after: float = 60.0  # a process up this long: its next death is a first one again
    in_a_row: int = 0
    started_at: float = 0.0
    retry_at: float | None = None  # when the process that is down now may start again

    def started(self, now: float) -> None:
        """A new process started (or failed to start) at `now`."""
        self.started_at, self.retry_at = now, None

    def due(self, now: float) -> bool:
        """Ask each round while the process is down: True once it should be started again."""
        if self.retry_at is None:  # the death is news
            if now - self.started_at >= self.forgive_after:
                self.in_a_row = 0
            wait = 0.0 if self.in_a_row == 0 else min(self.first * 2 ** (self.in_a_row - 1), self.ceiling)
            self.retry_at = now + wait
            self.in_a_row += 1
        return now >= self.retry_at

    def remaining(self, now: float) -> float:
        """Seconds until the process that is down may start again (0 when it may now)."""
        return max(self.retry_at - now, 0.0) if self.retry_at is not None else 0.0
