"""`mesh chaos --kill steward`'s verdict: a state that differs from the replay, or an effect
stored or seen twice, is a failure that names what differs (pure, no broker)."""

from __future__ import annotations

from bus.ops.chaos.steward import StewardCheck, _differences, _plain


def test_equal_states_have_no_differences_and_floats_compare_rounded():
    """Sums of costs added in another order differ in their last bits only: that is equal."""
    have = _plain({"services": {"a": {"cost_usd": 0.1 + 0.2, "recent": [1, 2]}}, "applied": 4})
    want = _plain({"services": {"a": {"cost_usd": 0.3, "recent": [1, 2]}}, "applied": 4})
    assert _differences(have, want) == []


def test_differences_name_the_path_and_both_values():
    """A missed event shows as a count or a list that differs, with where it is."""
    have = {"services": {"a": {"decided": {"blocked": 2}}, "b": {}}, "applied": 9}
    want = {"services": {"a": {"decided": {"blocked": 3}}}, "applied": 10}
    assert _differences(have, want) == [
        "applied: checkpoint 9 / replay 10",
        "services.a.decided.blocked: checkpoint 2 / replay 3",
        "services.b: only in the checkpoint",
    ]


def test_the_line_fails_on_any_difference_or_duplicate():
    """Equal state and every effect once is ok; anything else is not, and the line says why."""
    good = StewardCheck(events=12, applied=12, state_equal=True, effects=3)
    assert good.ok
    assert good.line(kills=2) == (
        "steward: kills=2 events=12 applied=12 state_equal=yes effects=3 missing=0 unexpected=0 duplicated=0 seen_twice=0"
    )
    assert not StewardCheck(state_equal=True, seen_twice=1).ok
    assert not StewardCheck(state_equal=True, missing=1).ok
    bad = StewardCheck(events=12, applied=11, differences=["applied: checkpoint 9 / replay 10"])
    assert not bad.ok and "state_equal=no" in bad.line(kills=1) and "differs: applied" in bad.line(kills=1)
