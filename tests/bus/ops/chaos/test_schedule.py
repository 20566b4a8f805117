"""bus/ops/chaos/schedule.py: a kill strikes after its mark, and only while a round is open."""

from __future__ import annotations

import random

import pytest

from bus.ops.chaos.schedule import DEADLINE_SLACK_SECONDS, due, kill_marks, listen_until


@pytest.mark.parametrize(
    ("mark", "published", "open_rounds", "total", "recovered", "over", "strike"),
    [
        (5, 4, 3, 10, True, False, False),  # before its mark: not yet, however much is open
        (5, 5, 1, 10, True, False, True),  # at its mark with a round open: now
        (5, 9, 4, 10, True, False, True),  # past its mark (the previous victim was down): now
        (5, 6, 0, 10, True, False, False),  # past its mark, all decided, more to come: wait for the next
        (5, 10, 0, 10, True, False, True),  # all published and decided: nothing will open again, strike idle
        (10, 10, 1, 10, True, False, True),  # the last proposal, still open: now
        (5, 9, 4, 10, False, False, False),  # open rounds, but nothing decided since the last restart: not yet
        (5, 10, 0, 10, False, False, True),  # nothing decided since, nothing open or to come: strike idle
        (8, 3, 0, 10, False, True, True),  # the run is over: now, whatever it hits
    ],
)
def test_a_kill_is_due_after_its_mark_while_a_round_is_open(
    mark, published, open_rounds, total, recovered, over, strike
):
    """Due once `mark` proposals are published and one of them has no outcome, and (after a
    restart) once the mesh has decided something again; with nothing open it waits for the next
    proposal, unless none will come (then it strikes, idle)."""
    counts = {"published": published, "open_rounds": open_rounds, "total": total}
    assert due(mark, **counts, recovered=recovered, over=over) is strike


def test_marks_are_seeded_ascending_and_within_the_proposals():
    """The same seed gives the same marks; each is a count of published proposals, 1..N."""
    marks = kill_marks(500, 3, random.Random(0))
    assert marks == kill_marks(500, 3, random.Random(0))
    assert marks == sorted(marks) and all(1 <= m <= 500 for m in marks)
    assert kill_marks(1, 2, random.Random(7)) == [1, 1]
    assert kill_marks(10, 0, random.Random(7)) == []


@pytest.mark.parametrize(
    ("settle", "deadline", "through_deadlines", "until"),
    [
        (2.0, 60.0, False, 102.0),  # the usual: `settle` after the last outcome
        (2.0, 6.0, True, 106.0 + DEADLINE_SLACK_SECONDS),  # until the last round's deadline has fired
        (30.0, 6.0, True, 130.0),  # a longer settle already covers it
    ],
)
def test_the_run_listens_past_every_deadline_when_asked(settle, deadline, through_deadlines, until):
    """A round's deadline comes at most `deadline` after its outcome (it opened before it was
    decided): with `through_deadlines` the run listens that long after the last outcome."""
    assert listen_until(100.0, settle=settle, deadline=deadline, through_deadlines=through_deadlines) == until
