"""bus/ops/chaos/tally.py: counting lost, duplicated and wrong outcomes, and latency percentiles."""

from __future__ import annotations

import random

import pytest

from bus.ops.chaos.faults import fault_for
from bus.ops.chaos.tally import PUBLISHED, UNACKNOWLEDGED, Tally, judge, logged, percentile
from contracts.outcomes import Outcome, RoundDecided

BLOCKED, APPROVED, ESCALATED = Outcome.BLOCKED, Outcome.APPROVED, Outcome.ESCALATED
BOTH = ["compliance", "security"]


def test_every_proposal_with_one_outcome_is_ok():
    """One outcome each: nothing lost, nothing duplicated, latency from proposal to outcome."""
    tally = Tally.count({"a": 10.0, "b": 11.0}, [("a", 10.5), ("b", 13.0)], dead_lettered=0)
    assert tally.ok
    assert (tally.proposals, tally.outcomes, tally.lost, tally.duplicated) == (2, 2, 0, 0)
    assert sorted(tally.latencies) == [0.5, 2.0]


def test_missing_and_repeated_outcomes_are_counted():
    """A proposal without an outcome is lost; a second outcome for one is a duplicate."""
    tally = Tally.count({"a": 0.0, "b": 0.0, "c": 0.0}, [("a", 1.0), ("a", 2.0), ("b", 1.0)], dead_lettered=3)
    assert not tally.ok
    assert (tally.outcomes, tally.lost, tally.duplicated, tally.dead_lettered) == (3, 1, 1, 3)
    assert sorted(tally.latencies) == [1.0, 1.0]  # the first outcome counts


def test_outcomes_of_releases_we_did_not_propose_are_ignored():
    """Other traffic in the outcomes stream is neither an outcome nor a duplicate of ours."""
    tally = Tally.count({"a": 0.0}, [("a", 1.0), ("zz", 1.0)], dead_lettered=0)
    assert tally.ok and tally.outcomes == 1


def test_the_line_has_the_documented_shape():
    """`proposals=N outcomes=N lost=0 duplicated=0 wrong=0 dead_lettered=K heard=N published=N unacked=N
    p50=… p99=…`"""
    counted = Tally.count(
        {"a": 0.0, "b": 0.0},
        [("a", 0.25), ("b", 1.5)],
        dead_lettered=1,
        heard={"a": 2, "b": 1},
        published={"a": 1},
        unacknowledged={"a": 1, "zz": 4},
    )
    assert counted.line() == (
        "proposals=2 outcomes=2 lost=0 duplicated=0 wrong=0 dead_lettered=1 heard=3 published=1 unacked=1 "
        "p50=0.250s p99=1.500s"
    )
    assert Tally.count({"a": 0.0}, [], dead_lettered=0).line().endswith("heard=0 published=- unacked=0 p50=- p99=-")


@pytest.mark.parametrize(
    ("stored", "heard", "published", "duplicated"),
    [
        ([("a", 1.0)], {"a": 1}, {"a": 1}, 0),  # one outcome in every view
        ([("a", 1.0)], {"a": 3}, {"a": 1}, 2),  # the stream deduped two publishes a subscriber heard
        ([("a", 1.0)], {"a": 1}, {"a": 2}, 1),  # the coordinator logged a second publish nobody heard
        ([("a", 1.0), ("a", 2.0)], {"a": 1}, {"a": 1}, 1),  # stored twice (a new message id)
        ([("a", 1.0)], {}, None, 0),  # a subscriber that heard nothing (NATS down) adds nothing
        ([("a", 1.0)], {"a": 2, "zz": 5}, None, 1),  # other releases' outcomes are not ours
    ],
)
def test_a_duplicate_in_any_view_is_a_duplicate(stored, heard, published, duplicated):
    """Per release, outcomes beyond the first in the view that shows most: the stream (after its
    dedupe), a core-NATS subscriber (every publish) or the coordinators' logs."""
    tally = Tally.count({"a": 0.0}, stored, dead_lettered=0, heard=heard, published=published)
    assert tally.duplicated == duplicated
    assert tally.ok is (duplicated == 0)


@pytest.mark.parametrize(
    ("heard", "published", "unacknowledged", "duplicated"),
    [
        ({"a": 2}, {"a": 1}, {"a": 1}, 0),  # heard, unacknowledged, looked for, sent again: heard again
        ({"a": 1}, {"a": 1}, {"a": 1}, 0),  # the unacknowledged copy never reached the subscriber
        ({"a": 3}, {"a": 1}, {"a": 1}, 1),  # one retry explains one copy, not two
        ({"a": 2}, {"a": 2}, {"a": 1}, 1),  # two acknowledged publishes: a duplicate whatever else failed
        ({"a": 2}, {"a": 1}, {"b": 1}, 1),  # another release's retry explains nothing of this one
        ({"a": 2}, None, {"a": 1}, 0),  # no logged publishes: the retry still explains the copy heard
    ],
)
def test_a_copy_heard_of_an_unacknowledged_publish_is_not_a_duplicate(heard, published, unacknowledged, duplicated):
    """Core NATS hands a publish to subscribers whether or not the stream stores it: when the
    coordinator logs a publish as unacknowledged and retries, the subscriber may hear both.
    Each such logged attempt excuses one copy heard — never the last, never a second publish
    the stream acknowledged (the mutation that republishes on every message still counts)."""
    tally = Tally.count(
        {"a": 0.0, "b": 0.0},
        [("a", 1.0), ("b", 1.0)],
        dead_lettered=0,
        heard={"b": 1, **heard},
        published=None if published is None else {"b": 1, **published},
        unacknowledged=unacknowledged,
    )
    assert tally.duplicated == duplicated
    assert tally.unacked == sum(unacknowledged.values())


def test_publishes_are_read_from_the_coordinators_json_log_lines():
    """Each line with the event counts once for its correlation id; other events, other
    services' lines and a line cut short by a SIGKILL count for nothing."""
    lines = [
        '{"service": "coordinator", "correlation_id": "chaos-5-00001", "event": "outcome published", "level": "info"}',
        '{"service": "coordinator", "correlation_id": "chaos-5-00001", "event": "outcome published", "level": "info"}',
        '{"service": "coordinator", "correlation_id": "chaos-5-00002", "event": "review counted", "level": "debug"}',
        '{"service": "coordinator", "correlation_id": "chaos-5-00003", "event": "outcome publ',
        '{"service": "coordinator", "correlation_id": "chaos-5-00004", "event": "outcome publish unacknowledged"}',
        "Traceback (most recent call last):",
    ]
    assert logged(lines, PUBLISHED) == {"chaos-5-00001": 2}
    assert logged(lines, UNACKNOWLEDGED) == {"chaos-5-00004": 1}


@pytest.mark.parametrize(("q", "expected"), [(50, 50), (99, 99), (100, 100), (1, 1)])
def test_percentile_is_nearest_rank(q, expected):
    """Nearest rank: p50 of 1..100 is 50, p99 is 99."""
    values = list(range(1, 101))
    random.Random(1).shuffle(values)
    assert percentile(values, q) == expected


def test_a_wrong_outcome_fails_the_run():
    """Nothing lost or duplicated is not enough: one wrong outcome makes the run fail."""
    tally = Tally.count({"a": 0.0}, [("a", 1.0)], dead_lettered=0, wrong=1)
    assert not tally.ok
    assert " wrong=1 " in tally.line()


def decided(outcome, *, expected=BOTH, fallbacks=None):
    return RoundDecided(
        release_id="r",
        outcome=outcome,
        reason="-",
        policy="all",
        expected=expected,
        missing=list(fallbacks or {}),
        fallbacks_applied=fallbacks or {},
    )


@pytest.mark.parametrize(
    ("outcome", "deserved", "wrong"),
    [
        # what the content deserves, decided by everyone: right
        (decided(APPROVED), APPROVED, False),
        (decided(BLOCKED), BLOCKED, False),
        (decided(ESCALATED), ESCALATED, False),
        # approving what the rules reject is always wrong: with everyone, without security
        # (its heartbeat expired), or by a fallback that approves
        (decided(APPROVED), BLOCKED, True),
        (decided(APPROVED, expected=["compliance"]), BLOCKED, True),
        (decided(APPROVED, fallbacks={"security": "approve_with_warning"}), BLOCKED, True),
        (decided(APPROVED), ESCALATED, True),
        # failing closed after a missed deadline is right, whatever the content
        (decided(BLOCKED, fallbacks={"security": "block"}), APPROVED, False),
        (decided(ESCALATED, fallbacks={"compliance": "escalate"}), APPROVED, False),
        (decided(ESCALATED, fallbacks={"security": "escalate"}), BLOCKED, False),
        # everyone answered and the outcome still differs: wrong
        (decided(BLOCKED), APPROVED, True),
        (decided(ESCALATED), APPROVED, True),
        (decided(ESCALATED), BLOCKED, True),
        # nobody expected: wrong even when the outcome happens to fit
        (decided(ESCALATED, expected=[]), ESCALATED, True),
        (decided(ESCALATED, expected=[]), APPROVED, True),
    ],
)
def test_judge_says_which_outcomes_contradict_their_content(outcome, deserved, wrong):
    """An outcome is wrong when it approves what the rules reject, when nobody was expected,
    or when every expected reviewer answered and it still differs; failing closed because a
    reviewer missed the deadline is not wrong."""
    why = judge(outcome, deserved)
    assert (why is not None) == wrong, why


def test_judge_names_why():
    """The reason says what happened and what the rules say, for the run's stderr."""
    assert judge(decided(APPROVED, expected=["compliance"]), BLOCKED) == (
        "approved expecting compliance; the rules say blocked"
    )
    assert judge(decided(ESCALATED, expected=[]), APPROVED) == "escalated with no reviewer expected"


def test_an_unknown_kill_kind_is_refused():
    """The error names the kinds there are."""
    with pytest.raises(ValueError, match="reviewer, coordinator, steward, nats, node, freeze, none"):
        fault_for("disk", mesh=None)


def test_an_unknown_freeze_target_is_refused():
    """`--kill freeze` freezes a reviewer, the coordinator, or any of them; nothing else."""
    with pytest.raises(ValueError, match="reviewer, coordinator, any"):
        fault_for("freeze", mesh=None, freeze="nats")
