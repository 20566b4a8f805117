"""One watch check: look at the mesh, raise an alert per problem, decide when to look again.

A redelivered check raises nothing twice (each alert's message id is the check's tick id and the
alert's kind) and proposes its next run again; the runtime keeps exactly one pending run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from nats.aio.client import Client

from bus.delivery import Delivery
from contracts.alerts import alert_msg_id
from contracts.envelope import utc_now
from contracts.schedules import NextRun, ScheduleTick
from services.watch.advisor import ModelAdvisor
from services.watch.cadence import Bounds, Proposal, next_check
from services.watch.checks import Limits, alerts_for
from services.watch.observe import observe
from services.watch.settings import WatchSettings


def bounds_of(settings: WatchSettings) -> Bounds:
    return Bounds(
        min=timedelta(seconds=settings.watch_min_interval_seconds),
        max=timedelta(seconds=settings.watch_max_interval_seconds),
    )


def limits_of(settings: WatchSettings) -> Limits:
    return Limits(
        dead_letters=(settings.watch_dead_letters_warning, settings.watch_dead_letters_critical),
        escalations=(settings.watch_escalations_warning, settings.watch_escalations_critical),
        fallbacks=(settings.watch_fallbacks_warning, settings.watch_fallbacks_critical),
    )


class WatchJob:
    """`await job.run(tick, delivery)` -> the `NextRun` this check proposes."""

    def __init__(
        self,
        *,
        settings: WatchSettings,
        connection: Callable[[], Client],
        advisor: ModelAdvisor | None = None,
        clock: Callable[[], datetime] = utc_now,
        observer: Callable[..., Any] = observe,
    ) -> None:
        self.settings = settings
        self.connection = connection
        self.advisor = advisor
        self.clock = clock
        self.observe = observer
        self.bounds = bounds_of(settings)
        self.limits = limits_of(settings)

    async def run(self, tick: ScheduleTick, delivery: Delivery) -> NextRun:
        now = self.clock()
        seen = await self.observe(self.connection(), self.settings, now=now)
        alerts = alerts_for(seen, self.limits, check_id=tick.tick_id)
        for alert in alerts:
            subject = self.settings.subjects.alert(alert.kind.value)
            await delivery.publish(alert, subject, msg_id=alert_msg_id(tick.tick_id, alert.kind))
        calm_for = now - seen.calm_since if seen.calm_since else self.bounds.min
        proposal = next_check(alerts, calm_for=calm_for, bounds=self.bounds)
        if self.advisor is not None:
            proposal = (
                await self.advisor.propose(seen, alerts, rule=proposal, bounds=self.bounds, calm_for=calm_for)
                or proposal
            )
        delivery.log.info(
            "mesh checked",
            alerts=[f"{a.kind.value}:{a.severity.value}" for a in alerts],
            next_in_seconds=proposal.after.total_seconds(),
            decided_by=proposal.by,
            reason=proposal.reason,
        )
        return next_run(proposal)


def next_run(proposal: Proposal) -> NextRun:
    """The proposal as the runtime takes it; the reason says who proposed it."""
    return NextRun(after=proposal.after, reason=f"{proposal.by}: {proposal.reason}")
