"""A circuit breaker per model: stop calling a model that keeps failing, probe it now and then.

    closed ──(N failed calls in a row)──▶ open ──(reset_seconds)──▶ half-open ──(probe ok)──▶ closed
                                           ▲                          │
                                           └──── (probe failed) ◀─────┘

In half-open exactly one call (the probe) goes through; everyone else is turned away until it
ends. What counts as a failure is the caller's call: the LLM client counts calls that ended in
server trouble (5xx, 529, timeouts, connection errors), not rate limits or bad answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from services.llm.errors import CircuitOpen


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """One model's breaker; `check()` before a call, then `succeeded()`, `failed()` or `abandoned()`."""

    def __init__(
        self, name: str, *, failures: int = 5, reset_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self._probing = False

    def check(self) -> None:
        """Raise CircuitOpen unless a call may go through now (in half-open: the one probe)."""
        if self.state is BreakerState.OPEN:
            waited = self.clock() - self.opened_at
            if waited < self.reset_seconds:
                raise CircuitOpen(
                    f"the circuit for {self.name} is open after {self.consecutive_failures} failed calls in a row; "
                    f"next probe in {self.reset_seconds - waited:.0f} s"
                )
            self.state = BreakerState.HALF_OPEN
        if self.state is BreakerState.HALF_OPEN:
            if self._probing:
                raise CircuitOpen(f"the circuit for {self.name} is half-open and its probe call is still running")
            self._probing = True

    def succeeded(self) -> None:
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self._probing = False

    def failed(self) -> None:
        self.consecutive_failures += 1
        self._probing = False
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.threshold:
            self.state = BreakerState.OPEN
            self.opened_at = self.clock()

    def abandoned(self) -> None:
        """The call ended without telling us anything about the model (budget, deadline, bad answer)."""
        self._probing = False
