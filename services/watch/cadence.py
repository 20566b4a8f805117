"""When the watch looks again, by rule: pure, no I/O and no clock — the offline decision, and
the model's fallback.

- something critical: as soon as allowed (`min`);
- a warning: soon (twice `min`);
- calm: after as long as it has been calm (since the last alert, or since the mesh began), so
  the pause doubles check after check while nothing happens, up to `max`.

Whatever is proposed, here or by a model, the runtime clamps to [min, max] and records the clamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from contracts.alerts import AlertSeverity, MeshAlert

RULE = "rule"


@dataclass(frozen=True)
class Bounds:
    """The watch's guardrails: never sooner than `min`, never later than `max`."""

    min: timedelta
    max: timedelta

    def clamp(self, delay: timedelta) -> timedelta:
        return max(self.min, min(self.max, delay))


@dataclass(frozen=True)
class Proposal:
    """When to look again, why, and who said so (`rule` or a model id)."""

    after: timedelta
    reason: str
    by: str = RULE


def next_check(alerts: Sequence[MeshAlert], *, calm_for: timedelta, bounds: Bounds) -> Proposal:
    """The rule's proposal after a check that raised `alerts`, the mesh calm for `calm_for` before it."""
    critical = sorted({a.kind.value for a in alerts if a.severity is AlertSeverity.CRITICAL})
    if critical:
        return Proposal(bounds.min, f"critical: {', '.join(critical)}; looking again as soon as allowed")
    if alerts:
        kinds = ", ".join(sorted({a.kind.value for a in alerts}))
        return Proposal(bounds.clamp(2 * bounds.min), f"warning: {kinds}; looking again soon")
    delay = bounds.clamp(calm_for)
    return Proposal(delay, f"calm for {_human(calm_for)}; backing off to {_human(delay)}")


def _human(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min" if seconds % 3600 >= 60 else f"{seconds // 3600} h"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s" if seconds % 60 else f"{seconds // 60} min"
    return f"{seconds} s"
