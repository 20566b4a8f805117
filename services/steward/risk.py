"""The risk rule: a service's level from its recent decisions. Pure: no I/O, no clock.

It looks at the service's last `window` decided releases (RECENT) and its open escalations:

    high    2 or more of them had a critical finding,
            or 3 or more were blocked and that is at least 30 % of them,
            or 5 or more escalations are open;
    medium  any of them had a critical finding or was blocked,
            or at least 20 % were escalated,
            or 2 or more escalations are open;
    low     otherwise (a service with no decision yet is low).

The same decisions always give the same level, so a replay gives the same changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.outcomes import Outcome
from contracts.stewardship import RiskLevel
from services.steward.state import RECENT, ServiceRecord


@dataclass(frozen=True)
class Window:
    """What the rule sees of one service."""

    decisions: int = 0
    blocked: int = 0
    escalated: int = 0
    critical: int = 0  # decisions with at least one critical finding
    open_escalations: int = 0

    @classmethod
    def of(cls, record: ServiceRecord, size: int = RECENT) -> Window:
        recent = record.recent[-size:]
        return cls(
            decisions=len(recent),
            blocked=sum(d.outcome is Outcome.BLOCKED for d in recent),
            escalated=sum(d.outcome is Outcome.ESCALATED for d in recent),
            critical=sum(d.critical > 0 for d in recent),
            open_escalations=len(record.open_escalations),
        )

    def rate(self, count: int) -> float:
        return count / self.decisions if self.decisions else 0.0


@dataclass(frozen=True)
class Risk:
    level: RiskLevel
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RiskRule:
    """The thresholds above; the defaults are the rule the README states."""

    high_critical: int = 2
    high_blocked: int = 3
    high_block_rate: float = 0.3
    high_open_escalations: int = 5
    medium_escalation_rate: float = 0.2
    medium_open_escalations: int = 2

    def assess(self, w: Window) -> Risk:
        of = f"of the last {w.decisions} decision{'' if w.decisions == 1 else 's'}"
        high = []
        if w.critical >= self.high_critical:
            high.append(f"{w.critical} {of} had a critical finding")
        if w.blocked >= self.high_blocked and w.rate(w.blocked) >= self.high_block_rate:
            high.append(f"{w.blocked} {of} {_were(w.blocked)} blocked")
        if w.open_escalations >= self.high_open_escalations:
            high.append(f"{w.open_escalations} escalations are open")
        if high:
            return Risk(RiskLevel.HIGH, high)
        medium = []
        if w.critical:
            medium.append(f"{w.critical} {of} had a critical finding")
        if w.blocked:
            medium.append(f"{w.blocked} {of} {_were(w.blocked)} blocked")
        if w.escalated and w.rate(w.escalated) >= self.medium_escalation_rate:
            medium.append(f"{w.escalated} {of} {_were(w.escalated)} escalated")
        if w.open_escalations >= self.medium_open_escalations:
            medium.append(f"{w.open_escalations} escalations are open")
        return Risk(RiskLevel.MEDIUM, medium) if medium else Risk(RiskLevel.LOW)


def _were(count: int) -> str:
    return "was" if count == 1 else "were"


RULE = RiskRule()


def assess(record: ServiceRecord, rule: RiskRule = RULE) -> Risk:
    """The level `rule` gives `record` now, with its reasons."""
    return rule.assess(Window.of(record))
