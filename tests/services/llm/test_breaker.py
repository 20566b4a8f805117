"""The circuit breaker per model: closed → open → half-open probe → closed or open again."""

import pytest

from services.llm.breaker import BreakerState, CircuitBreaker
from services.llm.errors import CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only():
    """Three failures in a row open it; a success in between resets the count."""
    breaker = CircuitBreaker("m", failures=3, reset_seconds=10, clock=Clock())
    for outcome in ("failed", "failed", "succeeded", "failed", "failed"):
        breaker.check()
        getattr(breaker, outcome)()
    assert breaker.state is BreakerState.CLOSED
    breaker.check()
    breaker.failed()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen, match="open after 3 failed calls in a row; next probe in 10 s"):
        breaker.check()


def test_half_open_lets_exactly_one_probe_through_and_closes_on_success():
    """After reset_seconds one probe may go; others are turned away until it succeeds."""
    clock = Clock()
    breaker = CircuitBreaker("m", failures=1, reset_seconds=10, clock=clock)
    breaker.check()
    breaker.failed()
    clock.now = 10
    breaker.check()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen, match="probe call is still running"):
        breaker.check()
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED
    breaker.check()


def test_a_failed_probe_opens_the_circuit_again_for_a_full_period():
    """The probe fails: open again, and the wait starts over."""
    clock = Clock()
    breaker = CircuitBreaker("m", failures=2, reset_seconds=10, clock=clock)
    for _ in range(2):
        breaker.check()
        breaker.failed()
    clock.now = 10
    breaker.check()
    breaker.failed()
    assert breaker.state is BreakerState.OPEN
    clock.now = 19
    with pytest.raises(CircuitOpen):
        breaker.check()


def test_an_abandoned_probe_frees_the_probe_slot():
    """A probe that ended without news about the model (budget, deadline) lets the next call probe."""
    clock = Clock()
    breaker = CircuitBreaker("m", failures=1, reset_seconds=1, clock=clock)
    breaker.check()
    breaker.failed()
    clock.now = 1
    breaker.check()
    breaker.abandoned()
    breaker.check()  # does not raise
    assert breaker.state is BreakerState.HALF_OPEN
