"""A declared schedule, the schedule message it becomes on the bus, and the tick a firing stands for.

`@agent.scheduled(...)` and `@agent.self_scheduled(...)` (bus/runtime.py) make a `ScheduleSpec`;
provisioning publishes its `message()` on the schedule subject; the server fires copies onto the
tick subject, which the agent's durable consumer `durable` reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bus.scheduling.cron import Cron, ScheduleSyntaxError, every_text, parse_every, zone
from contracts.deadlines import rfc3339_ceil
from contracts.schedules import ScheduleDefinition, ScheduleKind, ScheduleTick, tick_event_id
from contracts.subjects import Subjects

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A fired tick is kept this long (`Nats-Schedule-TTL`): long enough for every replica to be back.
TICK_TTL = timedelta(days=7)


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule of one agent: recurring (`cron` or `every`) or self-scheduled (the rest)."""

    agent: str
    name: str
    cron: str | None = None
    every: timedelta | None = None
    tz: str | None = None
    first_in: timedelta | None = None
    min_interval: timedelta | None = None
    max_interval: timedelta | None = None
    description: str = ""

    @classmethod
    def recurring(
        cls,
        agent: str,
        name: str,
        *,
        cron: str | None = None,
        every: str | timedelta | None = None,
        tz: str | None = None,
        description: str = "",
    ) -> ScheduleSpec:
        """A schedule the server fires by itself: `cron` (6 fields, in `tz`) or `every`."""
        _check_name(agent, name)
        if (cron is None) == (every is None):
            raise ScheduleSyntaxError(f"schedule {name!r}: give either cron= or every=, not both or neither")
        if every is not None:
            if tz is not None:
                raise ScheduleSyntaxError(f"schedule {name!r}: tz= goes with cron=, not with every=")
            return cls(agent, name, every=parse_every(every), description=description)
        Cron.parse(cron)
        zone(tz)
        return cls(agent, name, cron=cron.strip(), tz=tz, description=description)

    @classmethod
    def self_scheduled(
        cls,
        agent: str,
        name: str,
        *,
        first_in: timedelta,
        min_interval: timedelta,
        max_interval: timedelta,
        description: str = "",
    ) -> ScheduleSpec:
        """A schedule whose handler sets its next run, within [min_interval, max_interval]."""
        _check_name(agent, name)
        if not (timedelta(0) < min_interval <= max_interval):
            raise ScheduleSyntaxError(
                f"schedule {name!r}: need 0 < min_interval <= max_interval (got {min_interval} and {max_interval})"
            )
        if first_in < timedelta(0):
            raise ScheduleSyntaxError(f"schedule {name!r}: first_in may not be negative")
        return cls(
            agent,
            name,
            first_in=first_in,
            min_interval=min_interval,
            max_interval=max_interval,
            description=description,
        )

    @property
    def kind(self) -> ScheduleKind:
        if self.cron is not None:
            return ScheduleKind.CRON
        return ScheduleKind.EVERY if self.every is not None else ScheduleKind.SELF

    @property
    def is_self_scheduled(self) -> bool:
        return self.kind is ScheduleKind.SELF

    @property
    def full_name(self) -> str:
        return f"{self.agent}.{self.name}"

    @property
    def durable(self) -> str:
        """The durable consumer the agent's replicas share for this schedule's ticks."""
        return f"{self.agent}-schedule-{self.name}"

    def definition(self, *, at: datetime | None = None, reason: str = "") -> ScheduleDefinition:
        """The schedule message's body (for a self-scheduled one, the run `at`)."""
        seconds = {
            "first_in_seconds": self.first_in,
            "min_interval_seconds": self.min_interval,
            "max_interval_seconds": self.max_interval,
        }
        return ScheduleDefinition(
            agent=self.agent,
            schedule=self.name,
            kind=self.kind,
            spec=self.cron or (every_text(self.every) if self.every else ""),
            time_zone=self.tz,
            description=self.description,
            at=at,
            reason=reason,
            producer=self.agent,
            correlation_id=self.full_name,
            **{k: v.total_seconds() for k, v in seconds.items() if v is not None},
        )

    def message(self, subjects: Subjects, *, at: datetime | None = None, reason: str = "") -> tuple[bytes, dict]:
        """(body, headers) to publish on the schedule subject."""
        return schedule_message(subjects, self.definition(at=at, reason=reason))


def schedule_message(subjects: Subjects, definition: ScheduleDefinition) -> tuple[bytes, dict]:
    """(body, headers) that make the server fire `definition` onto its tick subject."""
    headers = {
        "Nats-Schedule": schedule_header(definition),
        "Nats-Schedule-Target": subjects.schedule_tick(definition.agent, definition.schedule),
        "Nats-Schedule-TTL": f"{int(TICK_TTL.total_seconds())}s",
        "content-type": "application/json",
    }
    if definition.kind is ScheduleKind.CRON and definition.time_zone:
        headers["Nats-Schedule-Time-Zone"] = definition.time_zone
    return definition.model_dump_json().encode(), headers


def schedule_header(definition: ScheduleDefinition) -> str:
    """`Nats-Schedule`: the cron expression, `@every 6h`, or `@at <RFC 3339>`."""
    if definition.kind is ScheduleKind.CRON:
        return definition.spec
    if definition.kind is ScheduleKind.EVERY:
        return f"@every {definition.spec}"
    at = definition.at or datetime.now(UTC)
    return f"@at {rfc3339_ceil(at)}"


def describe(definition: ScheduleDefinition) -> str:
    """One line for people: `cron 0 0 9 * * * (Europe/Berlin)`, `every 6h`, `self 30s..6h`."""
    if definition.kind is ScheduleKind.CRON:
        return f"cron {definition.spec}" + (f" ({definition.time_zone})" if definition.time_zone else " (UTC)")
    if definition.kind is ScheduleKind.EVERY:
        return f"every {definition.spec}"
    return f"self {duration_text(definition.min_interval_seconds)}..{duration_text(definition.max_interval_seconds)}"


def duration_text(seconds: float | None) -> str:
    """`1h30m`, `45s`, `0.5s`."""
    if seconds is None:
        return "?"
    if seconds != int(seconds) or seconds < 1:
        return f"{seconds:g}s"
    return every_text(timedelta(seconds=seconds))


def _check_name(agent: str, name: str) -> None:
    for what, value in (("agent", agent), ("schedule", name)):
        if not NAME.match(value):
            raise ScheduleSyntaxError(f"{what} name {value!r} must be 1-64 letters, digits, `_` or `-`")


def stamp(moment: datetime) -> str:
    """RFC 3339 UTC: whole seconds when whole (`…T09:00:00Z`), else milliseconds."""
    moment = moment.astimezone(UTC)
    if moment.microsecond == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def tick_from(fired: ScheduleDefinition, *, fired_at: datetime) -> ScheduleTick:
    """The tick a fired schedule message stands for (pure: the same on every redelivery).

    The server fires recurring schedules on whole seconds, within milliseconds: the second
    the message was stored in is the firing time. A self-scheduled run's time is in the message.
    """
    fired_at = fired_at.astimezone(UTC)
    if fired.manual and fired.tick_id:
        tick_id, scheduled_for = fired.tick_id, fired_at
    else:
        scheduled_for = fired.at.astimezone(UTC) if fired.at is not None else fired_at.replace(microsecond=0)
        tick_id = f"{fired.schedule}:{stamp(scheduled_for)}"
    return ScheduleTick(
        event_id=tick_event_id(fired.agent, tick_id),
        correlation_id=tick_id,
        producer=(fired.requested_by or "operator") if fired.manual else "nats-server",
        occurred_at=fired_at,
        agent=fired.agent,
        schedule=fired.schedule,
        tick_id=tick_id,
        scheduled_for=scheduled_for,
        fired_at=fired_at,
        manual=fired.manual,
    )


def first_run(spec: ScheduleSpec, now: datetime) -> datetime:
    """When a self-scheduled schedule with no pending run runs first."""
    return now + (spec.first_in or timedelta(0))
