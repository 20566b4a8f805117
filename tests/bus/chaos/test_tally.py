"""bus/chaos/tally.py: counting lost and duplicated outcomes, and latency percentiles."""

from __future__ import annotations

import random

import pytest

from bus.chaos.faults import fault_for
from bus.chaos.runner import ChaosPlan, proposals
from bus.chaos.tally import Tally, percentile


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
    """`proposals=N outcomes=N lost=0 duplicated=0 dead_lettered=K p50=… p99=…`"""
    line = Tally.count({"a": 0.0, "b": 0.0}, [("a", 0.25), ("b", 1.5)], dead_lettered=1).line()
    assert line == "proposals=2 outcomes=2 lost=0 duplicated=0 dead_lettered=1 p50=0.250s p99=1.500s"
    assert Tally.count({"a": 0.0}, [], dead_lettered=0).line().endswith("p50=- p99=-")


@pytest.mark.parametrize(("q", "expected"), [(50, 50), (99, 99), (100, 100), (1, 1)])
def test_percentile_is_nearest_rank(q, expected):
    """Nearest rank: p50 of 1..100 is 50, p99 is 99."""
    values = list(range(1, 101))
    random.Random(1).shuffle(values)
    assert percentile(values, q) == expected


def test_proposals_are_unique_and_some_carry_a_secret():
    """A run proposes N distinct releases, one in four with a planted credential."""
    made = proposals(ChaosPlan(proposals=8, seed=4))
    assert len({p.release_id for p in made}) == 8
    assert made[0].release_id == "chaos-4-00000"
    assert sum("AKIA" in change.diff for p in made for change in p.changes) >= 2


def test_an_unknown_kill_kind_is_refused():
    """The error names the kinds there are."""
    with pytest.raises(ValueError, match="reviewer, coordinator, nats, node, none"):
        fault_for("disk", mesh=None)
