"""bus/scheduling/specs.py: a declared schedule becomes one schedule message, and a fired copy one tick."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bus.scheduling.cron import ScheduleSyntaxError
from bus.scheduling.specs import ScheduleSpec, describe, tick_from
from contracts.schedules import ScheduleDefinition, ScheduleKind
from contracts.subjects import Subjects

S = Subjects("mesh")
DAILY = ScheduleSpec.recurring("digest", "daily", cron="0 0 9 * * *", tz="Europe/Berlin", description="The digest.")
CHECK = ScheduleSpec.self_scheduled(
    "watch", "check", first_in=timedelta(seconds=5), min_interval=timedelta(seconds=30), max_interval=timedelta(hours=6)
)


def test_a_cron_schedule_message_carries_its_zone_and_fires_onto_its_tick_subject():
    """The headers the server needs: the expression, the time zone, the target and how long a tick is kept."""
    body, headers = DAILY.message(S)
    assert headers == {
        "Nats-Schedule": "0 0 9 * * *",
        "Nats-Schedule-Target": "mesh.schedules.tick.digest.daily",
        "Nats-Schedule-Time-Zone": "Europe/Berlin",
        "Nats-Schedule-TTL": "604800s",
        "content-type": "application/json",
    }
    definition = ScheduleDefinition.model_validate_json(body)
    assert (definition.kind, definition.spec, definition.description) == (
        ScheduleKind.CRON,
        "0 0 9 * * *",
        "The digest.",
    )
    assert describe(definition) == "cron 0 0 9 * * * (Europe/Berlin)"
    assert DAILY.durable == "digest-schedule-daily"
    assert S.schedule_definition("digest", "daily") == "mesh.schedules.def.digest.daily"


def test_an_interval_and_a_self_scheduled_run_are_written_as_the_server_reads_them():
    """`@every 1h30m`; a self-scheduled run is `@at` its time, rounded up to the millisecond."""
    every = ScheduleSpec.recurring("digest", "often", every="90m")
    assert every.message(S)[1]["Nats-Schedule"] == "@every 1h30m"
    assert "Nats-Schedule-Time-Zone" not in every.message(S)[1]
    at = datetime(2026, 11, 27, 12, 0, 0, 123400, tzinfo=UTC)
    body, headers = CHECK.message(S, at=at, reason="first run")
    assert headers["Nats-Schedule"] == "@at 2026-11-27T12:00:00.124Z"
    definition = ScheduleDefinition.model_validate_json(body)
    assert (definition.at, definition.min_interval_seconds, definition.max_interval_seconds) == (at, 30.0, 21600.0)
    assert describe(definition) == "self 30s..6h"


@pytest.mark.parametrize(
    ("declare", "says"),
    [
        (lambda: ScheduleSpec.recurring("a", "b", cron="0 * * * * *", every="1s"), "either cron= or every="),
        (lambda: ScheduleSpec.recurring("a", "b"), "either cron= or every="),
        (lambda: ScheduleSpec.recurring("a", "b", every="1s", tz="UTC"), "tz= goes with cron="),
        (lambda: ScheduleSpec.recurring("a", "b.c", every="1s"), "schedule name 'b.c'"),
        (lambda: ScheduleSpec.recurring("a", "b", cron="0 9 * * *"), "has 5 field(s)"),
        (lambda: ScheduleSpec.recurring("a", "b", cron="0 0 9 * * *", tz="CEST"), "IANA"),
        (lambda: ScheduleSpec.recurring("a", "b", every="100ms"), "not like"),
        (
            lambda: ScheduleSpec.self_scheduled(
                "a", "b", first_in=timedelta(0), min_interval=timedelta(hours=2), max_interval=timedelta(hours=1)
            ),
            "min_interval <= max_interval",
        ),
    ],
)
def test_a_bad_declaration_fails_when_it_is_made(declare, says):
    """A schedule the server would refuse is refused at declaration, saying why."""
    with pytest.raises(ScheduleSyntaxError) as error:
        declare()
    assert says in str(error.value)


def test_a_fired_recurring_schedule_stands_for_the_second_it_fired_in():
    """The server fires on whole seconds, within milliseconds: that second is the tick's time and id."""
    body, _ = DAILY.message(S)
    fired = ScheduleDefinition.model_validate_json(body)
    tick = tick_from(fired, fired_at=datetime(2026, 11, 28, 8, 0, 0, 4200, tzinfo=UTC))
    assert tick.tick_id == "daily:2026-11-28T08:00:00Z"
    assert tick.scheduled_for == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    assert tick.fired_at.microsecond == 4200
    again = tick_from(fired, fired_at=datetime(2026, 11, 28, 8, 0, 0, 4200, tzinfo=UTC))
    assert again.event_id == tick.event_id  # a redelivery is the same event


def test_a_self_scheduled_and_a_manual_tick_keep_their_own_time_and_id():
    """A self-scheduled run stands for its `@at`; a manual one for when it was fired, under its own id."""
    at = datetime(2026, 11, 27, 12, 0, 0, 124000, tzinfo=UTC)
    fired = ScheduleDefinition.model_validate_json(CHECK.message(S, at=at)[0])
    tick = tick_from(fired, fired_at=at + timedelta(milliseconds=3))
    assert (tick.tick_id, tick.scheduled_for, tick.manual) == ("check:2026-11-27T12:00:00.124Z", at, False)
    manual = fired.model_copy(update={"manual": True, "tick_id": "check:manual:2026-11-27T12:05:00.001Z"})
    now = datetime(2026, 11, 27, 12, 5, 0, 2000, tzinfo=UTC)
    tick = tick_from(manual, fired_at=now)
    assert (tick.tick_id, tick.scheduled_for, tick.manual) == ("check:manual:2026-11-27T12:05:00.001Z", now, True)


def test_the_fingerprint_ignores_when_a_self_scheduled_run_is_due():
    """Two messages of one self-scheduled schedule at different times are the same schedule."""
    a = CHECK.definition(at=datetime(2026, 1, 1, tzinfo=UTC))
    b = CHECK.definition(at=datetime(2026, 6, 1, tzinfo=UTC), reason="later")
    assert a.fingerprint() == b.fingerprint()
    assert json.loads(a.model_dump_json())["kind"] == "self"
