"""Counting a chaos run: which proposals got an outcome, which got more than one, which got
a wrong one, how fast.

Pure functions of what was proposed (release id → when it was first sent, and the outcome its
content deserves) and of three views of the outcomes: what the outcomes stream holds (after its
dedupe), what a core-NATS subscriber heard during the run (every publish, duplicates included)
and what the coordinators' logs say they published. A duplicate in any view is a duplicate:
a consumer would have seen it — except, in what the subscriber heard, a copy sent again because
the stream never acknowledged the first (a stream electing its leader, or not yet loaded by a
restarted server): core NATS hands every publish to its subscribers whether or not a stream
stores it, so an at-least-once publisher that retries is heard twice, and the coordinator logs
each such attempt. Tested without a broker.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
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


PUBLISHED = "outcome published"  # the coordinator's log event once the stream acknowledged an outcome
UNACKNOWLEDGED = "outcome publish unacknowledged"  # ... when its publish got no PubAck (sent again later)


def logged(lines: Iterable[str], event: str) -> Counter[str]:
    """Release id → how many of a coordinator's JSON log lines have this `event` (the release is
    the line's `correlation_id`). A publisher SIGKILLed before its log line leaves no line: a
    floor, like `heard`."""
    found: Counter[str] = Counter()
    quoted = json.dumps(event)
    for line in lines:
        if quoted not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a SIGKILL
        if record.get("event") == event and record.get("correlation_id"):
            found[record["correlation_id"]] += 1
    return found


@dataclass(frozen=True)
class Tally:
    proposals: int
    outcomes: int  # outcome messages for our proposals in the stream (a duplicate counts twice)
    lost: int  # proposals with no outcome in the stream
    duplicated: int  # outcome messages beyond the first for a proposal, in whichever view shows most
    dead_lettered: int
    wrong: int = 0  # outcome messages that contradict their release's content (see `judge`)
    heard: int = 0  # outcome messages for our proposals a core-NATS subscriber heard
    published: int | None = None  # ... the coordinators' logs say they published (None: not logged)
    unacked: int = 0  # outcome publishes the coordinators logged as unacknowledged, and so sent again
    latencies: list[float] = field(default_factory=list, repr=False)  # seconds, proposal → first outcome

    @classmethod
    def count(
        cls,
        proposed: dict[str, float],
        outcomes: list[tuple[str, float]],
        *,
        dead_lettered: int,
        wrong: int = 0,
        heard: Mapping[str, int] | None = None,
        published: Mapping[str, int] | None = None,
        unacknowledged: Mapping[str, int] | None = None,
    ) -> Tally:
        """`outcomes` are (release id, stored at) as the stream holds them; `heard` and
        `published` count outcome messages per release id as a subscriber heard them and as the
        coordinators logged them; `unacknowledged` counts the publishes the coordinators logged
        as getting no PubAck. A release's duplicates are its count beyond one in the view that
        has most of it; each unacknowledged publish excuses one copy heard (never the last)."""
        per_release: Counter[str] = Counter()
        first: dict[str, float] = {}
        for release_id, stored_at in outcomes:
            if release_id not in proposed:
                continue  # not ours
            per_release[release_id] += 1
            first[release_id] = min(stored_at, first.get(release_id, stored_at))
        unacked = {r: n for r, n in (unacknowledged or {}).items() if r in proposed}
        # An unacknowledged publish may have reached the subscriber, then its retry did too.
        heard_less_retries = {r: max(n - unacked.get(r, 0), min(n, 1)) for r, n in (heard or {}).items()}
        views = [per_release, heard_less_retries, published or {}]
        most = {r: max(view.get(r, 0) for view in views) for r in proposed}
        return cls(
            proposals=len(proposed),
            outcomes=sum(per_release.values()),
            lost=sum(1 for release_id in proposed if release_id not in per_release),
            duplicated=sum(n - 1 for n in most.values() if n > 1),
            dead_lettered=dead_lettered,
            wrong=wrong,
            heard=sum(n for r, n in (heard or {}).items() if r in proposed),
            published=None if published is None else sum(n for r, n in published.items() if r in proposed),
            unacked=sum(unacked.values()),
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
        """`proposals=N outcomes=N lost=0 duplicated=0 wrong=0 dead_lettered=K heard=N published=N
        unacked=0 p50=0.412s p99=2.310s` (one line)"""

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}s"

        published = "-" if self.published is None else str(self.published)
        return (
            f"proposals={self.proposals} outcomes={self.outcomes} lost={self.lost} duplicated={self.duplicated} "
            f"wrong={self.wrong} dead_lettered={self.dead_lettered} heard={self.heard} published={published} "
            f"unacked={self.unacked} p50={seconds(self.p50)} p99={seconds(self.p99)}"
        )
