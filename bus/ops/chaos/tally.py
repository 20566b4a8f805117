"""Counting a chaos run: which proposals got an outcome, which got more than one, which got
a wrong one, how fast.

Pure functions of what was proposed (release id → when it was first sent, and the outcome its
content deserves) and what the outcomes stream holds, tested without a broker.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from contracts.outcomes import Outcome, RoundDecided


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..100) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def judge(outcome: RoundDecided, deserved: Outcome) -> str | None:
    """Why `outcome` contradicts what its release's content `deserved`, or None when it does not.

    Failing closed is right under faults, approving what the rules reject never is:

    - decided with no reviewer expected: wrong, whatever the outcome;
    - approved, deserving anything else: wrong;
    - blocked or escalated, deserving otherwise: right when a reviewer missed the deadline and
      its fallback was applied (`fallbacks_applied`), wrong when every reviewer that decided
      the round answered.
    """
    if not outcome.expected:
        return f"{outcome.outcome.value} with no reviewer expected"
    if outcome.outcome == deserved:
        return None
    if outcome.outcome == Outcome.APPROVED:
        return f"approved expecting {', '.join(outcome.expected)}; the rules say {deserved.value}"
    if outcome.fallbacks_applied:
        return None  # a reviewer missed the deadline: its fallback failed closed
    return f"{outcome.outcome.value} with every expected reviewer answering; the rules say {deserved.value}"


@dataclass(frozen=True)
class Tally:
    proposals: int
    outcomes: int  # outcome messages for our proposals (a duplicate counts twice)
    lost: int  # proposals with no outcome
    duplicated: int  # outcome messages beyond the first for a proposal
    dead_lettered: int
    wrong: int = 0  # outcome messages that contradict their release's content (see `judge`)
    latencies: list[float] = field(default_factory=list, repr=False)  # seconds, proposal → first outcome

    @classmethod
    def count(
        cls, proposed: dict[str, float], outcomes: list[tuple[str, float]], *, dead_lettered: int, wrong: int = 0
    ) -> Tally:
        per_release: Counter[str] = Counter()
        first: dict[str, float] = {}
        for release_id, stored_at in outcomes:
            if release_id not in proposed:
                continue  # not ours
            per_release[release_id] += 1
            first[release_id] = min(stored_at, first.get(release_id, stored_at))
        return cls(
            proposals=len(proposed),
            outcomes=sum(per_release.values()),
            lost=sum(1 for release_id in proposed if release_id not in per_release),
            duplicated=sum(n - 1 for n in per_release.values()),
            dead_lettered=dead_lettered,
            wrong=wrong,
            latencies=[max(first[r] - proposed[r], 0.0) for r in first],
        )

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing duplicated, nothing wrong."""
        return self.lost == 0 and self.duplicated == 0 and self.wrong == 0

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float | None:
        return percentile(self.latencies, 99)

    def line(self) -> str:
        """`proposals=N outcomes=N lost=0 duplicated=0 dead_lettered=K p50=0.412s p99=2.310s`"""

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}s"

        return (
            f"proposals={self.proposals} outcomes={self.outcomes} lost={self.lost} duplicated={self.duplicated} "
            f"wrong={self.wrong} dead_lettered={self.dead_lettered} p50={seconds(self.p50)} p99={seconds(self.p99)}"
        )
