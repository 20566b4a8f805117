"""Schedules: what an agent declares, what the server fires, and what a tick's handling recorded.

An agent's schedule lives on `<ns>.schedules.def.<agent>.<schedule>` as a `ScheduleDefinition`
with `Nats-Schedule` headers; at each firing the NATS server copies it onto
`<ns>.schedules.tick.<agent>.<schedule>`, where the agent's durable consumer reads it, and the
runtime hands the handler a `ScheduleTick` (bus/scheduling). What each tick's handling left —
its result, a self-scheduled agent's next run and how it was clamped, a pause — is kept in the
schedules KV bucket as the records below, which `mesh schedule list | show` read.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from contracts.envelope import Envelope, utc_now


class ScheduleKind(StrEnum):
    CRON = "cron"  # a 6-field cron expression, in a time zone
    EVERY = "every"  # a fixed interval (`@every 6h`)
    SELF = "self"  # self-scheduled: one `@at` run at a time, set by the handler's `NextRun`


class ScheduleDefinition(Envelope):
    """`schedule.definition`: one agent's schedule, as stored on its schedule subject; the server
    fires a copy of it onto the tick subject at each firing (and `mesh schedule trigger` one now)."""

    agent: str = Field(description="The agent whose handler the ticks are for.", examples=["digest"])
    schedule: str = Field(description="The schedule's name, unique within its agent.", examples=["daily"])
    kind: ScheduleKind = Field(description="cron, every or self (self-scheduled).", examples=["cron"])
    spec: str = Field(
        default="",
        description="The cron expression (6 fields, seconds first) or the interval (`6h`); empty when self-scheduled.",
        examples=["0 0 9 * * *", "6h"],
    )
    time_zone: str | None = Field(
        default=None, description="IANA time zone of a cron schedule (UTC when unset).", examples=["Europe/Berlin"]
    )
    description: str = Field(default="", description="What the schedule is for.")
    first_in_seconds: float | None = Field(
        default=None, description="Self-scheduled: how soon the first run comes when none is pending."
    )
    min_interval_seconds: float | None = Field(
        default=None, description="Self-scheduled: the next run is never sooner than this after a run."
    )
    max_interval_seconds: float | None = Field(
        default=None, description="Self-scheduled: the next run is never later than this after a run."
    )
    at: datetime | None = Field(
        default=None, description="Self-scheduled: the run this message stands for (`@at`).", examples=[None]
    )
    reason: str = Field(default="", description="Self-scheduled: why this run was set for then.")
    manual: bool = Field(default=False, description="Fired by `mesh schedule trigger`, not by the server.")
    tick_id: str = Field(default="", description="A manual firing's tick id (the server's firings have none here).")
    requested_by: str | None = Field(default=None, description="Who triggered a manual firing.")

    @property
    def name(self) -> str:
        return f"{self.agent}.{self.schedule}"

    def fingerprint(self) -> dict:
        """What makes two definitions the same schedule (not when a self-scheduled run is due)."""
        return self.model_dump(
            mode="json",
            include={
                "agent",
                "schedule",
                "kind",
                "spec",
                "time_zone",
                "description",
                "first_in_seconds",
                "min_interval_seconds",
                "max_interval_seconds",
            },
        )


class ScheduleTick(Envelope):
    """One firing of a schedule, as its handler gets it."""

    agent: str = Field(description="The agent the tick is for.", examples=["digest"])
    schedule: str = Field(description="Which of its schedules fired.", examples=["daily"])
    tick_id: str = Field(
        description="Stable per firing (the same on every redelivery): `<schedule>:<scheduled_for>`, "
        "or `<schedule>:manual:<when>` for `mesh schedule trigger`.",
        examples=["daily:2026-11-22T08:00:00Z"],
    )
    scheduled_for: datetime = Field(
        description="The firing time this tick stands for (UTC): the window it covers ends here.",
        examples=["2026-11-22T08:00:00Z"],
    )
    fired_at: datetime = Field(
        description="When the server fired it (the tick's stream timestamp).", examples=["2026-11-22T08:00:00.004Z"]
    )
    coalesced: int = Field(
        default=0, ge=0, description="Older firings missed (every replica down, or busy) folded into this one."
    )
    manual: bool = Field(default=False, description="Fired by `mesh schedule trigger`.")

    @property
    def name(self) -> str:
        return f"{self.agent}.{self.schedule}"


def tick_event_id(agent: str, tick_id: str) -> str:
    """A tick's `event_id`: the same for every delivery of one firing."""
    return hashlib.sha256(f"tick:{agent}:{tick_id}".encode()).hexdigest()[:32]


class NextRun(BaseModel):
    """What a self-scheduled handler proposes: a time (`at`) or a delay from now (`after`), and why.

    Neither: no preference, the next run comes after the schedule's `max_interval`. Whatever is
    proposed is clamped to [min_interval, max_interval] after now, and the clamp is recorded."""

    at: datetime | None = Field(default=None, description="When to run next (UTC if no zone is given).")
    after: timedelta | None = Field(default=None, description="How long from now to run next.")
    reason: str = Field(default="", description="Why then: recorded with the run, and logged.")

    @model_validator(mode="after")
    def _one_of(self) -> NextRun:
        if self.at is not None and self.after is not None:
            raise ValueError("give NextRun either `at` or `after`, not both")
        if self.at is not None and self.at.tzinfo is None:
            self.at = self.at.replace(tzinfo=UTC)
        return self


class NextRunDecision(BaseModel):
    """A self-scheduled run's next run: what the handler proposed, what was set, and why."""

    proposed: datetime | None = Field(description="What the handler asked for (none: no preference).")
    used: datetime = Field(description="When the next run is set for.")
    clamped: Literal["min", "max"] | None = Field(
        default=None, description="`min` or `max` when the proposal was outside [min_interval, max_interval]."
    )
    reason: str = Field(default="", description="The handler's reason.")
    note: str = Field(default="", description="What happened, in one line (proposed vs used, and why).")


class TickState(StrEnum):
    HANDLING = "handling"  # claimed; its handler runs (or ran and its replica died before recording)
    DONE = "done"  # handled: a redelivery is acked without running the handler again
    SKIPPED = "skipped"  # a newer tick was waiting: folded into that one's `coalesced`
    FAILED = "failed"  # the handler failed on its last delivery (dead-lettered)


class TickRecord(BaseModel):
    """What became of one tick (KV `ticks.<agent>.<schedule>.<tick>`, kept a week)."""

    tick_id: str
    state: TickState
    coalesced: int = 0
    at: datetime = Field(default_factory=utc_now, description="When it reached this state.")
    instance: str = ""


class ScheduleResult(BaseModel):
    """A schedule's last handled tick and its result (KV `last.<agent>.<schedule>`)."""

    tick_id: str
    scheduled_for: datetime
    fired_at: datetime
    handled_at: datetime = Field(default_factory=utc_now)
    coalesced: int = 0
    manual: bool = False
    ok: bool = True
    result: str | None = Field(default=None, description="What the handler returned (text, cut to 2,000 chars).")
    error: str | None = None
    instance: str = Field(default="", description="The instance that handled it.")
    next_run: NextRunDecision | None = Field(default=None, description="Self-scheduled: the run it set next.")
    failures: int = Field(default=0, description="Ticks in a row whose handling failed (0 after a success).")


class SchedulePaused(BaseModel):
    """A paused schedule (KV `paused.<agent>.<schedule>`): the definition it had, to put back on resume."""

    agent: str
    schedule: str
    by: str = Field(description="Who paused it.")
    at: datetime = Field(default_factory=utc_now, description="When.")
    headers: dict[str, str] = Field(default_factory=dict, description="The schedule message's headers.")
    definition: ScheduleDefinition
