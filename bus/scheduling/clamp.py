"""The guardrail of a self-scheduled agent: whatever its handler proposes, the next run comes no
sooner than `min_interval` and no later than `max_interval` after now.

Pure: no I/O, no clock (`now` is passed in).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.schedules import NextRun, NextRunDecision


def clamp_next_run(
    proposal: NextRun | None, *, now: datetime, min_interval: timedelta, max_interval: timedelta
) -> NextRunDecision:
    """When the next run comes, given the handler's `proposal` (None or empty: no preference, so
    after `max_interval`), and a one-line note saying what was proposed, what is used and why."""
    earliest, latest = now + min_interval, now + max_interval
    reason = proposal.reason if proposal else ""
    if proposal is None or (proposal.at is None and proposal.after is None):
        return NextRunDecision(
            proposed=None, used=latest, reason=reason, note=f"no proposal: next run after max_interval ({max_interval})"
        )
    proposed = proposal.at if proposal.at is not None else now + proposal.after
    if proposed < earliest:
        return NextRunDecision(
            proposed=proposed,
            used=earliest,
            clamped="min",
            reason=reason,
            note=f"proposed in {_ahead(proposed, now)}, sooner than min_interval ({min_interval}): "
            f"clamped to {min_interval}",
        )
    if proposed > latest:
        return NextRunDecision(
            proposed=proposed,
            used=latest,
            clamped="max",
            reason=reason,
            note=f"proposed in {_ahead(proposed, now)}, later than max_interval ({max_interval}): "
            f"clamped to {max_interval}",
        )
    return NextRunDecision(
        proposed=proposed, used=proposed, reason=reason, note=f"in {_ahead(proposed, now)}, as proposed"
    )


def _ahead(moment: datetime, now: datetime) -> str:
    delta = moment - now
    return f"-{-delta}" if delta < timedelta(0) else str(delta)
