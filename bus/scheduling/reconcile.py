"""Schedules as code: the schedule messages on the bus made to match what the agents declare.

Called by `provision` (bus/provision.py) with the declared `ScheduleSpec`s:

- ensure mode (an agent starting: `reconcile=False`): create a missing schedule of its own,
  change nothing that exists (a difference is reported as drift), remove nothing;
- reconcile (`mesh provision`): also replace a changed schedule, and remove every schedule on
  the bus that no declared agent has any more (of `owners`, or of any agent), so no orphan
  keeps firing;
- check (`mesh provision --check`, `create=False`): change nothing, report what would change.

A paused schedule (`mesh schedule pause`) is never brought back here; with reconcile, what its
resume will put back follows the code. A self-scheduled schedule is "missing" only when no run
is pending *and* no run is in progress (its last tick not yet settled): a restarted or second
replica never adds a run next to the one its handler is about to set.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError

from bus.scheduling.specs import ScheduleSpec, first_run, schedule_message, tick_from
from bus.scheduling.state import ScheduleStore, keys_under, read
from bus.settings import BusSettings
from contracts.envelope import utc_now
from contracts.schedules import ScheduleDefinition, SchedulePaused, TickState
from contracts.subjects import Subjects

# Headers that make the schedule; a difference in any of them is a change.
_HEADERS = ("Nats-Schedule", "Nats-Schedule-Target", "Nats-Schedule-Time-Zone", "Nats-Schedule-TTL")


@dataclass(frozen=True)
class Stored:
    """A schedule message as the stream holds it."""

    definition: ScheduleDefinition
    headers: dict[str, str]
    time: datetime | None  # when it was stored
    seq: int


async def current_definition(js: JetStreamContext, subjects: Subjects, subject: str) -> Stored | None:
    """The schedule message on `subject`, or None when there is none."""
    try:
        msg = await js.get_last_msg(subjects.schedules_stream, subject)
    except NotFoundError:
        return None
    definition = ScheduleDefinition.model_validate_json(msg.data)
    return Stored(definition, dict(msg.headers or {}), getattr(msg, "time", None), msg.seq)


async def defined_subjects(js: JetStreamContext, subjects: Subjects) -> list[str]:
    """Every schedule subject that holds a schedule now."""
    return await _subjects(js, subjects, subjects.schedule_definitions)


async def fired_subjects(js: JetStreamContext, subjects: Subjects) -> list[str]:
    """Every tick subject that holds a tick now."""
    return await _subjects(js, subjects, subjects.schedule_ticks)


async def _subjects(js: JetStreamContext, subjects: Subjects, pattern: str) -> list[str]:
    try:
        info = await js.stream_info(subjects.schedules_stream, subjects_filter=pattern)
    except NotFoundError:
        return []
    return sorted(info.state.subjects or {})


async def reconcile_schedules(
    js: JetStreamContext,
    settings: BusSettings,
    specs: Sequence[ScheduleSpec],
    report: Any,
    *,
    reconcile: bool,
    create: bool,
    owners: Collection[str] | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Bring the schedules in line with `specs`, adding lines to `report` (bus/provision.Report)."""
    s = settings.subjects
    try:
        kv = await js.key_value(s.schedules_bucket)
    except BucketNotFoundError:  # only in check mode: provisioning created it otherwise
        report.missing += [f"schedule {spec.full_name}" for spec in specs]
        return
    for spec in specs:
        await _one(js, kv, settings, spec, report, reconcile=reconcile, create=create, clock=clock)
    if reconcile or not create:
        declared = {(spec.agent, spec.name) for spec in specs}
        await _remove_orphans(js, kv, s, declared, owners, report, apply=reconcile)


async def _one(js, kv, settings: BusSettings, spec: ScheduleSpec, report: Any, *, reconcile, create, clock) -> None:
    s = settings.subjects
    what = f"schedule {spec.full_name}"
    subject = s.schedule_definition(spec.agent, spec.name)
    store = ScheduleStore(js, kv, s.schedules_bucket, spec.agent, spec.name)
    paused, revision = await read(kv, store.paused_key, SchedulePaused)
    if paused is not None:
        wanted = spec.definition(at=paused.definition.at, reason=paused.definition.reason)
        if paused.definition.fingerprint() == wanted.fingerprint():
            report.unchanged.append(f"{what} (paused)")
        elif reconcile:  # what `mesh schedule resume` puts back follows the code
            body, headers = schedule_message(s, wanted)
            update = paused.model_copy(update={"definition": wanted, "headers": headers})
            await kv.update(store.paused_key, update.model_dump_json().encode(), last=revision)
            report.updated.append(f"{what} (paused): {_changes(paused.definition, wanted)}; resume puts this back")
        else:
            report.drifted.append(f"{what} (paused): {_changes(paused.definition, wanted)}")
        return
    current = await current_definition(js, s, subject)
    if current is None:
        if spec.is_self_scheduled and await run_in_progress(js, store, s, spec):
            report.unchanged.append(f"{what} (a run is in progress; it sets the next one)")
            return
        if not create:
            report.missing.append(what)
            return
        at = first_run(spec, clock()) if spec.is_self_scheduled else None
        body, headers = spec.message(s, at=at, reason="first run" if at else "")
        await js.publish(subject, body, headers=headers)
        report.created.append(what)
        return
    definition, headers = current.definition, current.headers
    wanted = spec.definition(at=definition.at, reason=definition.reason)
    _, want_headers = schedule_message(s, wanted)
    changes = _changes(definition, wanted)
    header_changes = [
        f"{name} {headers.get(name)!r} -> {want_headers.get(name)!r}"
        for name in _HEADERS
        if name != "Nats-Schedule" or not spec.is_self_scheduled  # a self-scheduled run's time is its own
        if headers.get(name) != want_headers.get(name)
    ]
    if not changes and not header_changes:
        report.unchanged.append(what)
        return
    line = f"{what}: " + "; ".join(filter(None, [changes, *header_changes]))
    if reconcile:
        body, publish_headers = schedule_message(s, wanted)
        await js.publish(subject, body, headers=publish_headers)  # same subject: replaces it
        report.updated.append(line)
    else:
        report.drifted.append(line)


def _changes(have: ScheduleDefinition, want: ScheduleDefinition) -> str:
    a, b = have.fingerprint(), want.fingerprint()
    return "; ".join(f"{k} {a[k]!r} -> {b[k]!r}" for k in b if a.get(k) != b[k])


async def run_in_progress(js: JetStreamContext, store: ScheduleStore, s: Subjects, spec: ScheduleSpec) -> bool:
    """Whether the last tick of a self-scheduled schedule is still to be settled (its handler
    will set the next run): not recorded done, skipped or failed, and not acked."""
    try:
        msg = await js.get_last_msg(s.schedules_stream, s.schedule_tick(spec.agent, spec.name))
    except NotFoundError:
        return False
    try:
        fired = ScheduleDefinition.model_validate_json(msg.data)
    except ValueError:
        return False
    tick = tick_from(fired, fired_at=msg.time or utc_now())
    record = await store.tick(tick.tick_id)
    if record is not None and record.state is not TickState.HANDLING:
        return False
    try:
        info = await js.consumer_info(s.schedules_stream, spec.durable)
    except NotFoundError:
        return True  # the consumer, once created, delivers it (it starts from the first tick)
    return msg.seq > info.ack_floor.stream_seq


async def _remove_orphans(js, kv, s: Subjects, declared: set, owners, report: Any, *, apply: bool) -> None:
    """Remove the schedules no declared agent has (of `owners`, or of any agent when None)."""
    found: dict[tuple[str, str], str] = {}
    for subject in await defined_subjects(js, s):
        agent, name = subject.split(".")[-2:]
        found[(agent, name)] = "schedule"
    for key in await keys_under(kv, "paused.>"):
        agent, name = key.split(".")[1:3]
        found.setdefault((agent, name), "paused schedule")
    for (agent, name), kind in sorted(found.items()):
        if (agent, name) in declared or (owners is not None and agent not in owners):
            continue
        what = f"{kind} {agent}.{name}"
        if not apply:
            report.drifted.append(f"{what}: no agent declares it (provisioning removes it)")
            continue
        await js.purge_stream(s.schedules_stream, subject=s.schedule_definition(agent, name))
        for key in (f"paused.{agent}.{name}", f"last.{agent}.{name}", f"coalesced.{agent}.{name}"):
            try:
                await kv.purge(key)
            except Exception:  # noqa: BLE001 - a key never written: nothing to purge
                pass
        report.updated.append(f"{what}: removed, no agent declares it any more")
