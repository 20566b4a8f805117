"""What the watch concludes from what it saw: pure, no I/O and no clock.

`alerts_for(seen, limits, check_id=…)` gives one `MeshAlert` per kind of problem — new dead
letters, an escalation backlog, reviewers without a live instance, rounds closed by a fallback —
each a warning or critical by the thresholds in `Limits`, and nothing when all is well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contracts.alerts import AlertKind, AlertSeverity, MeshAlert


@dataclass(frozen=True)
class Observation:
    """What one check saw on the bus."""

    at: datetime
    window_seconds: float
    new_dead_letters: dict[str, int] = field(default_factory=dict)  # by service, since the last alert of the kind
    dead_letter_seq: int | None = None  # the last dead-letter sequence counted
    escalated: list[str] = field(default_factory=list)  # release of each escalated outcome in the window
    fallbacks: dict[str, int] = field(default_factory=dict)  # reviewer -> rounds closed by its fallback
    fallback_rounds: int = 0  # outcomes in the window with any fallback applied
    reviewers_down: list[str] = field(default_factory=list)  # expected reviewers with no live instance
    required_down: list[str] = field(default_factory=list)  # of those, the ones policy requires
    registry_known: bool = True  # False: the registry could not be read, so nobody is called down
    calm_since: datetime | None = None  # the last alert before this check (or when the mesh began)


@dataclass(frozen=True)
class Limits:
    """(warning, critical) thresholds per kind of problem."""

    dead_letters: tuple[int, int] = (1, 10)
    escalations: tuple[int, int] = (3, 10)
    fallbacks: tuple[int, int] = (1, 5)


def alerts_for(seen: Observation, limits: Limits, *, check_id: str, producer: str = "watch") -> list[MeshAlert]:
    """One alert per problem found, most severe first."""

    def alert(kind: AlertKind, severity: AlertSeverity, detail: str, counts: dict[str, int], **extra) -> MeshAlert:
        return MeshAlert(
            kind=kind,
            severity=severity,
            detail=detail,
            counts=counts,
            check_id=check_id,
            producer=producer,
            correlation_id=check_id,
            occurred_at=seen.at,
            **extra,
        )

    found: list[MeshAlert] = []
    if (severity := _severity(sum(seen.new_dead_letters.values()), limits.dead_letters)) is not None:
        total = sum(seen.new_dead_letters.values())
        by = _listed(_ranked(seen.new_dead_letters))
        found.append(
            alert(
                AlertKind.DEAD_LETTERS,
                severity,
                f"{total} message(s) dead-lettered since the last dead-letter alert ({by}); "
                "`mesh dlq list` shows them, `mesh dlq replay SEQ` sends one again.",
                {**dict(_ranked(seen.new_dead_letters)), "total": total},
                dead_letter_seq=seen.dead_letter_seq,
            )
        )
    if seen.registry_known and seen.reviewers_down:
        severity = AlertSeverity.CRITICAL if seen.required_down else AlertSeverity.WARNING
        required = f" ({', '.join(seen.required_down)} required by policy: their rounds close by fallback)"
        found.append(
            alert(
                AlertKind.REVIEWER_DOWN,
                severity,
                f"No live instance of {', '.join(seen.reviewers_down)}{required if seen.required_down else ''}; "
                "start it (`mesh run NAME`) or check its logs.",
                {name: 0 for name in seen.reviewers_down} | {"total": len(seen.reviewers_down)},
            )
        )
    if (severity := _severity(len(seen.escalated), limits.escalations)) is not None:
        releases = sorted(set(seen.escalated))
        shown = ", ".join(releases[:10]) + (f" and {len(releases) - 10} more" if len(releases) > 10 else "")
        found.append(
            alert(
                AlertKind.ESCALATION_BACKLOG,
                severity,
                f"{len(seen.escalated)} round(s) escalated to a human in the last {_span(seen.window_seconds)} "
                f"({shown}); someone must decide them.",
                {"escalated": len(seen.escalated), "releases": len(releases)},
                window_seconds=seen.window_seconds,
            )
        )
    if (severity := _severity(seen.fallback_rounds, limits.fallbacks)) is not None:
        by = _listed(_ranked(seen.fallbacks))
        found.append(
            alert(
                AlertKind.FALLBACK_ROUNDS,
                severity,
                f"{seen.fallback_rounds} round(s) in the last {_span(seen.window_seconds)} closed with a fallback "
                f"for a reviewer that did not answer in time ({by}).",
                {**dict(_ranked(seen.fallbacks)), "total": seen.fallback_rounds},
                window_seconds=seen.window_seconds,
            )
        )
    return sorted(found, key=lambda a: a.severity is not AlertSeverity.CRITICAL)


def _severity(count: int, limits: tuple[int, int]) -> AlertSeverity | None:
    warning, critical = limits
    if count >= critical:
        return AlertSeverity.CRITICAL
    if count >= warning:
        return AlertSeverity.WARNING
    return None


def _ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _listed(pairs: list[tuple[str, int]], shown: int = 10) -> str:
    text = ", ".join(f"{name} {count}" for name, count in pairs[:shown])
    return text + (f" and {len(pairs) - shown} more" if len(pairs) > shown else "")


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
