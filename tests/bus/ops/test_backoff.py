"""When a dead process may start again: pure, no processes, an explicit clock."""

from __future__ import annotations

from bus.ops.backoff import Backoff


def deaths(backoff: Backoff, times: list[float]) -> list[float]:
    """For a process that dies at each of `times` and is started again as soon as allowed: the waits."""
    waits = []
    for died in times:
        now = died
        while not backoff.due(now):
            now += 0.5
        waits.append(now - died)
        backoff.started(now)
    return waits


def test_the_first_death_restarts_at_once_and_each_quick_one_after_waits_twice_as_long():
    """A crash loop: 0 s, then 1, 2, 4, 8 s, never more than the ceiling."""
    backoff = Backoff(first=1.0, ceiling=8.0, forgive_after=60.0)
    assert deaths(backoff, [100.0, 101.0, 103.0, 106.0, 111.0, 120.0, 129.0]) == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_process_that_stayed_up_long_enough_restarts_at_once_again():
    """After `forgive_after` seconds up, the next death counts as a first one."""
    backoff = Backoff(first=1.0, forgive_after=60.0)
    assert deaths(backoff, [100.0, 101.0, 103.0]) == [0.0, 1.0, 2.0]
    assert deaths(backoff, [200.0]) == [0.0]


def test_remaining_counts_down_while_the_process_waits():
    """`remaining` is what the status line shows: the seconds left, never negative."""
    backoff = Backoff(first=4.0)
    backoff.started(10.0)
    assert backoff.due(11.0)  # first death: at once
    backoff.started(11.0)
    assert not backoff.due(12.0) and backoff.remaining(12.0) == 4.0
    assert not backoff.due(15.0) and backoff.remaining(15.0) == 1.0
    assert backoff.due(16.0) and backoff.remaining(17.0) == 0.0
