"""The digest's figures for one window: pure, no I/O and no clock.

`digest_of(window, outcomes, dead_letters, alerts)` turns what the streams held in the window
into one `DigestPublished`: the same inputs always give the same digest (its event id and time
come from the window), which is what makes a redelivered tick's digest the same message.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.digests import AgentCost, DigestPublished, FindingCount, digest_event_id, digest_window_key
from contracts.outcomes import Outcome, RoundDecided
from contracts.reviews import Severity

ESCALATED_LISTED = 20  # releases named in a digest; the rest are counted
_SEVERITY_RANK = {s: rank for rank, s in enumerate(reversed(list(Severity)))}  # info 0 … critical 4


@dataclass(frozen=True)
class Window:
    """`[start, end)`: what one digest covers."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, seconds: float) -> Window:
        """The window of `seconds` up to `end` (a tick's scheduled time)."""
        return cls(end - timedelta(seconds=seconds), end)


def digest_of(
    window: Window,
    outcomes: Iterable[RoundDecided],
    dead_letters: Iterable[str],
    alerts: Iterable[str],
    *,
    top: int = 5,
    schedule: str = "",
    producer: str = "digest",
) -> DigestPublished:
    """The digest of a window: `outcomes` in stream order, the service of each dead letter, the
    kind of each `mesh.alert`."""
    outcomes = list(outcomes)
    by_kind = Counter(outcome.outcome.value for outcome in outcomes)
    escalated = still_escalated(outcomes)
    dead = Counter(dead_letters)
    raised = Counter(alerts)
    costs = costs_by_reviewer(outcomes)
    return DigestPublished(
        event_id=digest_event_id(window.start, window.end),
        correlation_id=f"digest:{digest_window_key(window.start, window.end)}",
        producer=producer,
        occurred_at=window.end,
        window_start=window.start,
        window_end=window.end,
        schedule=schedule,
        releases=len(outcomes),
        outcomes={kind.value: by_kind[kind.value] for kind in Outcome},
        top_findings=top_findings(outcomes, top),
        escalated=escalated[:ESCALATED_LISTED],
        escalated_total=len(escalated),
        fallback_rounds=sum(1 for outcome in outcomes if outcome.fallbacks_applied),
        dead_letters=dict(sorted(dead.items(), key=lambda item: (-item[1], item[0]))),
        dead_letters_total=sum(dead.values()),
        alerts=dict(sorted(raised.items(), key=lambda item: (-item[1], item[0]))),
        alerts_total=sum(raised.values()),
        costs=costs,
        cost_usd=round(sum(cost.cost_usd for cost in costs), 8),
        tokens=sum(cost.tokens for cost in costs),
    )


def still_escalated(outcomes: list[RoundDecided]) -> list[str]:
    """Releases whose last outcome in the window is `escalated`, in the order they were escalated."""
    last: dict[str, RoundDecided] = {}
    for outcome in outcomes:
        last.pop(outcome.release_id, None)  # re-inserted: the dict keeps the order of last outcomes
        last[outcome.release_id] = outcome
    return [release for release, outcome in last.items() if outcome.outcome is Outcome.ESCALATED]


def top_findings(outcomes: list[RoundDecided], top: int) -> list[FindingCount]:
    """The `top` rules that fired on the most releases; a rule counts once per outcome however
    many files and lines it fired on (a minified file would otherwise outweigh everything)."""
    releases: Counter[str] = Counter()
    worst: dict[str, Severity] = {}
    for outcome in outcomes:
        seen: set[str] = set()
        for review in outcome.reviews:
            for finding in review.findings:
                seen.add(finding.rule)
                if finding.rule not in worst or _SEVERITY_RANK[finding.severity] > _SEVERITY_RANK[worst[finding.rule]]:
                    worst[finding.rule] = finding.severity
        releases.update(seen)
    ranked = sorted(releases.items(), key=lambda item: (-item[1], -_SEVERITY_RANK[worst[item[0]]], item[0]))
    return [FindingCount(rule=rule, releases=count, severity=worst[rule].value) for rule, count in ranked[:top]]


def costs_by_reviewer(outcomes: list[RoundDecided]) -> list[AgentCost]:
    """What each reviewer spent on the reviews the outcomes counted, the costliest first."""
    reviews: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    cost: defaultdict[str, float] = defaultdict(float)
    for outcome in outcomes:
        for review in outcome.reviews:
            reviews[review.reviewer] += 1
            tokens[review.reviewer] += review.tokens.total
            cost[review.reviewer] += review.cost_usd
    ranked = sorted(reviews, key=lambda agent: (-cost[agent], -tokens[agent], agent))
    return [
        AgentCost(agent=agent, reviews=reviews[agent], tokens=tokens[agent], cost_usd=round(cost[agent], 8))
        for agent in ranked
    ]
