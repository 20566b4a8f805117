"""bus/ops/chaos/progress.py: a round is open from its proposal's PubAck to its outcome heard."""

from __future__ import annotations

from bus.ops.chaos.progress import Progress


def test_a_round_is_open_from_its_puback_until_its_outcome_is_heard():
    """Published and not heard is open; heard closes it; a second outcome heard is counted."""
    progress = Progress(total=3)
    progress.proposal_published("a")
    progress.proposal_published("b")
    assert progress.open == {"a", "b"} and progress.changed.is_set()
    progress.outcome_heard("a")
    progress.outcome_heard("a")
    assert progress.open == {"b"} and progress.heard["a"] == 2


def test_an_outcome_heard_before_its_puback_is_read_leaves_nothing_open():
    """The outcome may overtake the proposal's PubAck: that round is not open afterwards."""
    progress = Progress(total=1)
    progress.outcome_heard("a")
    progress.proposal_published("a")
    assert progress.open == set() and progress.published == {"a"}


def test_the_end_of_the_run_wakes_whoever_waits():
    """`end` marks the run over and sets `changed`, so a kill still waiting looks again."""
    progress = Progress(total=1)
    progress.changed.clear()
    progress.end()
    assert progress.over and progress.changed.is_set()
