"""Operator controls over schedules, as plain functions: what `mesh schedule` does.

    views = await gather(nc, settings, declared_schedules(settings))
    view = resolve(views, "watch.check")             # or "check" when only one agent has it
    await pause(nc, settings, view, by=operator(settings))
    await resume(nc, settings, view, by=...)
    tick_id = await trigger(nc, settings, view, by=...)
    result = await wait_for_tick(nc, settings, view, tick_id, timeout=30)

A view is read from the bus, not from the code: the schedule messages in the schedules stream,
the pauses and results in the schedules bucket, and the last tick fired. The services of this
code base (services/index.py) add what they declare, so a schedule not provisioned yet shows
as `missing`; an agent from elsewhere shows once it has started (it creates its schedules).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NoStreamResponseError, NotFoundError
from nats.js.kv import KeyValue

from bus.errors import MeshError
from bus.ops.settings import MeshSettings
from bus.scheduling.cron import Cron, next_every, parse_every, zone
from bus.scheduling.reconcile import Stored, current_definition, defined_subjects, fired_subjects, run_in_progress
from bus.scheduling.specs import ScheduleSpec, describe, schedule_message
from bus.scheduling.state import ScheduleStore, keys_under, read
from contracts.envelope import new_event_id, utc_now
from contracts.schedules import (
    ScheduleDefinition,
    ScheduleKind,
    SchedulePaused,
    ScheduleResult,
    TickRecord,
    TickState,
)

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64})?$")


class State:
    ACTIVE = "active"  # on the bus, firing
    PAUSED = "paused"  # `mesh schedule pause`: removed from the bus until resumed
    RUNNING = "running"  # self-scheduled, a run in progress: its handler sets the next one
    MISSING = "missing"  # declared, not on the bus yet: `mesh provision` (or the agent's start) creates it


@dataclass
class ScheduleView:
    """One schedule as the bus shows it now."""

    agent: str
    schedule: str
    definition: ScheduleDefinition
    state: str
    declared: bool = False  # by a service of this code base
    headers: dict[str, str] = field(default_factory=dict)
    next_at: datetime | None = None
    last_fired_at: datetime | None = None
    last: ScheduleResult | None = None
    paused: SchedulePaused | None = None
    stored: Stored | None = None
    consumer: dict | None = None  # filled by `details`

    @property
    def name(self) -> str:
        return f"{self.agent}.{self.schedule}"

    def to_json(self) -> dict:
        d = self.definition
        return {
            "name": self.name,
            "agent": self.agent,
            "schedule": self.schedule,
            "kind": d.kind.value,
            "spec": describe(d),
            "time_zone": d.time_zone,
            "description": d.description,
            "state": self.state,
            "declared": self.declared,
            "next_at": _iso(self.next_at),
            "last_fired_at": _iso(self.last_fired_at),
            "last": self.last.model_dump(mode="json") if self.last else None,
            "paused": self.paused.model_dump(mode="json", exclude={"definition", "headers"}) if self.paused else None,
            "schedule_header": self.headers.get("Nats-Schedule"),
            "consumer": self.consumer,
        }


def declared_schedules(settings: MeshSettings) -> list[ScheduleSpec]:
    """What the services of this code base declare (services/index.py)."""
    from services.index import SERVICES

    return [spec for entry in SERVICES.values() for spec in entry.agent(settings).schedules]


def check_name(name: str) -> None:
    """Raise a one-line error unless `name` looks like `<agent>.<schedule>` or `<schedule>`."""
    if not NAME.match(name):
        raise MeshError(
            f"{name!r} is not a schedule name: give `<agent>.<schedule>` (e.g. watch.check) or just "
            "`<schedule>`; `mesh schedule list` shows them"
        )


def matching(views: list[ScheduleView], name: str) -> list[ScheduleView]:
    """The views `name` may mean (raises for a malformed name)."""
    check_name(name)
    return [v for v in views if v.name == name] if "." in name else [v for v in views if v.schedule == name]


def resolve(views: list[ScheduleView], name: str) -> ScheduleView:
    """The schedule `name` names: `<agent>.<schedule>`, or `<schedule>` when only one agent has it."""
    found = matching(views, name)
    if len(found) == 1:
        return found[0]
    known = ", ".join(v.name for v in views) or "none"
    if not found:
        raise MeshError(f"no schedule {name!r}; known schedules: {known} (see `mesh schedule list`)")
    raise MeshError(f"{name!r} is ambiguous: {', '.join(v.name for v in found)}; say which, as `<agent>.<schedule>`")


async def gather(
    nc: Client, settings: MeshSettings, declared: list[ScheduleSpec], *, now: datetime | None = None
) -> list[ScheduleView]:
    """Every schedule on the bus, paused, or declared by the code, sorted by name."""
    now = now or utc_now()
    s = settings.subjects
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    kv = await _bucket(js, settings)
    views: dict[tuple[str, str], ScheduleView] = {}
    for subject in await defined_subjects(js, s):
        stored = await current_definition(js, s, subject)
        if stored is not None:
            d = stored.definition
            views[(d.agent, d.schedule)] = ScheduleView(
                d.agent, d.schedule, d, State.ACTIVE, headers=stored.headers, stored=stored
            )
    if kv is not None:
        for key in await keys_under(kv, "paused.>"):
            paused, _ = await read(kv, key, SchedulePaused)
            if paused is not None:
                views[(paused.agent, paused.schedule)] = ScheduleView(
                    paused.agent,
                    paused.schedule,
                    paused.definition,
                    State.PAUSED,
                    headers=paused.headers,
                    paused=paused,
                )
    # a self-scheduled schedule between runs has no schedule message: its last tick tells of it
    for subject in await fired_subjects(js, s):
        agent, name = subject.split(".")[-2:]
        if (agent, name) in views:
            continue
        tick = await current_definition(js, s, subject)
        if tick is None or tick.definition.kind is not ScheduleKind.SELF:
            continue  # a recurring schedule's last ticks, after it was removed
        store = ScheduleStore(js, kv, s.schedules_bucket, agent, name) if kv is not None else None
        spec = ScheduleSpec(agent, name, first_in=timedelta(0))
        running = store is not None and await run_in_progress(js, store, s, spec)
        definition = tick.definition.model_copy(update={"manual": False, "tick_id": "", "requested_by": None})
        views[(agent, name)] = ScheduleView(agent, name, definition, State.RUNNING if running else State.MISSING)
    for spec in declared:
        key = (spec.agent, spec.name)
        if key in views:
            views[key].declared = True
            continue
        state = State.MISSING
        if spec.is_self_scheduled and kv is not None:
            store = ScheduleStore(js, kv, s.schedules_bucket, spec.agent, spec.name)
            state = State.RUNNING if await run_in_progress(js, store, s, spec) else State.MISSING
        views[key] = ScheduleView(spec.agent, spec.name, spec.definition(), state, declared=True)
    for view in views.values():
        await _fill(js, kv, settings, view, now)
    return [views[key] for key in sorted(views)]


async def details(nc: Client, settings: MeshSettings, view: ScheduleView) -> ScheduleView:
    """Add the durable consumer's state (ticks waiting, being handled) to `view`."""
    s = settings.subjects
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    durable = f"{view.agent}-schedule-{view.schedule}"
    try:
        info = await js.consumer_info(s.schedules_stream, durable)
    except NotFoundError:
        view.consumer = {"name": f"{s.schedules_stream}/{durable}", "exists": False}
        return view
    view.consumer = {
        "name": f"{s.schedules_stream}/{durable}",
        "exists": True,
        "waiting": info.num_pending,
        "in_flight": info.num_ack_pending,
        "redelivered": info.num_redelivered,
    }
    return view


async def pause(nc: Client, settings: MeshSettings, view: ScheduleView, *, by: str) -> str:
    """Stop `view` firing: remember it as paused (so provisioning leaves it out), then remove it."""
    if view.state == State.PAUSED:
        return f"{view.name} was already paused (by {view.paused.by})"
    s = settings.subjects
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    kv = await _required_bucket(js, settings)
    _, headers = schedule_message(s, view.definition)
    record = SchedulePaused(
        agent=view.agent, schedule=view.schedule, by=by, headers=view.headers or headers, definition=view.definition
    )
    # recorded first: a pause that removed the schedule but was not recorded would be undone by provisioning
    await kv.put(f"paused.{view.agent}.{view.schedule}", record.model_dump_json().encode())
    await js.purge_stream(s.schedules_stream, subject=s.schedule_definition(view.agent, view.schedule))
    return f"paused {view.name}: it fires no more until `mesh schedule resume {view.name}`"


async def resume(
    nc: Client, settings: MeshSettings, view: ScheduleView, *, by: str, now: datetime | None = None
) -> str:
    """Put a paused schedule back as it was (a self-scheduled one: its run, or the first run if that passed)."""
    if view.state != State.PAUSED:
        return f"{view.name} is not paused ({view.state})"
    now = now or utc_now()
    s = settings.subjects
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    kv = await _required_bucket(js, settings)
    definition = view.definition
    if definition.kind is ScheduleKind.SELF:
        at = definition.at
        if at is None or at <= now:  # its run passed while paused: the first run, as for a new schedule
            at = now + timedelta(seconds=definition.first_in_seconds or 0)
        definition = definition.model_copy(update={"at": at, "reason": f"resumed by {by}"})
    body, headers = schedule_message(s, definition)
    await _publish(js, settings, s.schedule_definition(view.agent, view.schedule), body, headers)
    await kv.delete(f"paused.{view.agent}.{view.schedule}")
    return f"resumed {view.name}"


async def trigger(nc: Client, settings: MeshSettings, view: ScheduleView, *, by: str) -> str:
    """Fire one tick of `view` now, through the same path as the server's (manual=True); its tick id."""
    s = settings.subjects
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    tick_id = f"{view.schedule}:manual:{utc_now().strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"
    fired = view.definition.model_copy(
        update={"manual": True, "tick_id": tick_id, "requested_by": by, "event_id": new_event_id()}
    )
    headers = {"Nats-Msg-Id": f"tick:{view.agent}:{tick_id}", "content-type": "application/json"}
    await _publish(js, settings, s.schedule_tick(view.agent, view.schedule), fired.model_dump_json().encode(), headers)
    return tick_id


async def wait_for_tick(
    nc: Client, settings: MeshSettings, view: ScheduleView, tick_id: str, *, timeout: float
) -> tuple[TickRecord | None, ScheduleResult | None]:
    """Wait until tick `tick_id` is settled: (its record, its result if it is still the schedule's last)."""
    js = nc.jetstream(timeout=settings.publish_timeout_seconds)
    kv = await _required_bucket(js, settings)
    store = ScheduleStore(js, kv, settings.subjects.schedules_bucket, view.agent, view.schedule)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        record = await store.tick(tick_id)
        if record is not None and record.state is not TickState.HANDLING:
            last = await store.last()
            return record, last if last is not None and last.tick_id == tick_id else None
        if asyncio.get_running_loop().time() >= deadline:
            return record, None
        await asyncio.sleep(0.1)


def when(moment: datetime | None, now: datetime) -> str:
    """`08:00:00Z (in 9h 12m)` within a day, `2026-11-30 08:00Z (in 2d 9h)` further, `… ago`, or `-`."""
    if moment is None:
        return "-"
    delta = moment - now
    ago = delta < timedelta(0)
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    span = " ".join([f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n][:2] or ["0s"])
    utc = moment.astimezone(UTC)
    shown = utc.strftime("%H:%M:%SZ") if days == 0 else utc.strftime("%Y-%m-%d %H:%MZ")
    return f"{shown} ({span} ago)" if ago else f"{shown} (in {span})"


async def _fill(js: JetStreamContext, kv: KeyValue | None, settings: MeshSettings, view: ScheduleView, now) -> None:
    s = settings.subjects
    server_next: datetime | None = None
    try:
        tick = await js.get_last_msg(s.schedules_stream, s.schedule_tick(view.agent, view.schedule))
        view.last_fired_at = getattr(tick, "time", None)
        server_next = _parse_time((tick.headers or {}).get("Nats-Schedule-Next"))
    except NotFoundError:
        pass
    if kv is not None:
        view.last, _ = await read(kv, f"last.{view.agent}.{view.schedule}", ScheduleResult)
    view.next_at = _next_firing(view, server_next, now)


def _next_firing(view: ScheduleView, server_next: datetime | None, now: datetime) -> datetime | None:
    """When it fires next: the server's word when it is still ahead, else computed from the schedule."""
    if view.state != State.ACTIVE:
        return None
    d = view.definition
    if d.kind is ScheduleKind.SELF:
        return d.at
    if server_next is not None and server_next > now:
        return server_next.astimezone(UTC)
    if d.kind is ScheduleKind.EVERY:
        anchor = view.stored.time if view.stored and view.stored.time else now
        every = parse_every(d.spec)
        return next_every(anchor + every, every, now)
    return Cron.parse(d.spec).next_after(now, zone(d.time_zone))


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None  # `purge`: an @at schedule's only firing


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


async def _bucket(js: JetStreamContext, settings: MeshSettings) -> KeyValue | None:
    try:
        return await js.key_value(settings.subjects.schedules_bucket)
    except BucketNotFoundError:
        return None


async def _required_bucket(js: JetStreamContext, settings: MeshSettings) -> KeyValue:
    kv = await _bucket(js, settings)
    if kv is None:
        raise MeshError(
            f"bucket {settings.subjects.schedules_bucket}, where schedules are kept, does not exist yet; "
            "run `mesh provision` (nothing was changed)"
        )
    return kv


async def _publish(js: JetStreamContext, settings: MeshSettings, subject: str, body: bytes, headers: dict) -> None:
    try:
        await js.publish(subject, body, headers=headers)
    except NoStreamResponseError:
        raise MeshError(
            f"stream {settings.subjects.schedules_stream} does not exist yet; run `mesh provision` (nothing was changed)"
        ) from None
