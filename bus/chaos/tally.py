"""Counting a chaos run: which proposals got an outcome, which got more than one, how fast.

Pure functions of what was proposed (release id → when it was first sent) and what the
outcomes stream holds (release id, when the server stored it), tested without a broker.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (`q` in 0..100) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Tally:
    proposals: int
    outcomes: int  # outcome messages for our proposals (a duplicate counts twice)
    lost: int  # proposals with no outcome
    duplicated: int  # outcome messages beyond the first for a proposal
    dead_lettered: int
    latencies: list[float] = field(default_factory=list, repr=False)  # seconds, proposal → first outcome

    @classmethod
    def count(cls, proposed: dict[str, float], outcomes: list[tuple[str, float]], *, dead_lettered: int) -> Tally:
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
            latencies=[max(first[r] - proposed[r], 0.0) for r in first],
        )

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing duplicated."""
        return self.lost == 0 and self.duplicated == 0

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
            f"dead_lettered={self.dead_lettered} p50={seconds(self.p50)} p99={seconds(self.p99)}"
        )
