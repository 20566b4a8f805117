"""Streams, consumers and KV buckets as code, created or reconciled idempotently.

FastStream keeps a durable consumer's old config silently when it changes, and the last
service to start would overwrite stream settings. So the desired state lives here, once:
services only *create what is missing* when they start; `mesh provision` reconciles drift
and reports every change it made.

A change that would lose durability or data (fewer replicas, a shorter or smaller limit, memory
storage, another retention policy) is a *downgrade*: it is refused, and reported, unless the
caller allows it (`mesh provision --allow-downgrade`). A cluster is never quietly made R1
because one command ran without MESH_STREAM_REPLICAS.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError

from bus.errors import ProvisioningError
from bus.scheduling.reconcile import reconcile_schedules
from bus.scheduling.specs import ScheduleSpec
from bus.settings import BusSettings

DAY = 24 * 3600.0
HISTORY_PER_SERVICE = 5000  # decided releases (and, apart, risk changes) the history keeps per service
TICKS_KEPT = 1000  # fired ticks kept per schedule: a burst missed while every replica was down, bounded


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer a service reads from (shared by all of its replicas)."""

    stream: str
    durable: str
    filter_subject: str
    description: str = ""


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # "what: field old -> new"
    drifted: list[str] = field(default_factory=list)  # seen but left alone (ensure mode)
    unchanged: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # downgrades left alone: not allowed
    missing: list[str] = field(default_factory=list)  # absent, and not created (`create=False`)


def desired_streams(settings: BusSettings) -> list[StreamConfig]:
    s = settings.subjects

    def stream(name: str, subjects: list[str], max_age: float, **extra) -> StreamConfig:
        return StreamConfig(
            name=name,
            subjects=subjects,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=max_age,
            duplicate_window=settings.duplicate_window_seconds,
            num_replicas=settings.stream_replicas,
            **extra,
        )

    return [
        stream(s.events_stream, [s.events], 7 * DAY, description="Events from other systems."),
        stream(s.reviews_stream, [s.reviews], 7 * DAY, description="Reviewers' decisions."),
        stream(s.outcomes_stream, [s.outcomes], 30 * DAY, description="One outcome per round."),
        stream(
            s.deadlines_stream,
            [s.deadlines],
            7 * DAY,
            description="Round deadlines, fired by the server (message schedules).",
            allow_msg_schedules=True,
        ),
        stream(s.dead_letter_stream, [s.dead_letters], 30 * DAY, description="Messages that could not be processed."),
        stream(s.digests_stream, [s.digests], 90 * DAY, description="Digests of the mesh's work and their deliveries."),
        stream(s.alerts_stream, [s.alerts], 30 * DAY, description="Problems the watch agent found in the mesh."),
        stream(
            s.advisories_stream,
            [s.max_deliveries_advisory(name) for name in s.data_streams],
            7 * DAY,
            description="The server's max-deliveries advisories, kept until a service dead-letters the message.",
        ),
        stream(
            s.admin_stream,
            [s.admin_actions],
            90 * DAY,
            description="Operator actions: pause, resume, drain (who, when, what).",
        ),
        stream(
            s.history_stream,
            [s.history],
            365 * DAY,
            description="The steward's long-term memory: each decided release and each risk change, per service.",
            # one subject per service and kind: a service's whole history is a bounded read
            max_msgs_per_subject=HISTORY_PER_SERVICE,
            allow_direct=True,  # searched by batched direct gets, without a consumer (services/steward/history.py)
        ),
        stream(
            s.approvals_stream,
            [s.approvals],
            30 * DAY,  # longer than the longest approval deadline (coordinator/settings.py): its timer lives here
            description="Human approval: decisions, the coordinator's verdicts, notices, and each approval's "
            "deadline and reminder (message schedules).",
            allow_msg_schedules=True,
        ),
        stream(
            s.audit_stream,
            [s.audit],
            settings.audit_retention_days * DAY,
            description="The audit trail of approvals: requests, decisions, refusals, expiries. Immutable.",
            deny_delete=True,  # no message is ever removed but by age
            deny_purge=True,
        ),
        stream(
            s.schedules_stream,
            [s.schedules],
            0,  # never by age: a max_age shorter than an interval would silently delete the schedule
            description="Agents' schedules, and the ticks the server fires from them (bus/scheduling).",
            allow_msg_schedules=True,
            allow_msg_ttl=True,  # each fired tick expires after a week (Nats-Schedule-TTL)
            # a burst of ticks missed while every replica was down is coalesced into one; keep it bounded
            max_msgs_per_subject=TICKS_KEPT,
        ),
    ]


def desired_buckets(settings: BusSettings) -> list[KeyValueConfig]:
    return [
        KeyValueConfig(
            bucket=settings.subjects.rounds_bucket,
            description="Review rounds: state, reviews, deadline, outcome.",
            history=1,
            ttl=30 * DAY,  # a duplicate proposal within a month still finds its round
            storage=StorageType.FILE,
            replicas=settings.stream_replicas,
        ),
        KeyValueConfig(
            bucket=settings.subjects.agents_bucket,
            description="Agent cards, one per agent name.",
            history=1,
            storage=StorageType.FILE,
            replicas=settings.stream_replicas,
        ),
        KeyValueConfig(
            bucket=settings.subjects.instances_bucket,
            description="Live agent instances; each record expires unless heartbeated (Nats-TTL).",
            history=1,
            storage=StorageType.FILE,
            replicas=settings.stream_replicas,
            # expiry leaves a marker, so watchers learn that an instance died
            limit_marker_ttl=settings.heartbeat_ttl_seconds,
        ),
        KeyValueConfig(
            bucket=settings.subjects.daemons_bucket,
            description="Daemon agents: each one's lease (with a TTL), checkpoint and checkpoint chunks.",
            history=1,
            storage=StorageType.FILE,
            replicas=settings.stream_replicas,
            # the lease key carries a TTL (Nats-TTL); its expiry leaves a marker that standbys see
            limit_marker_ttl=60.0,
        ),
        KeyValueConfig(
            bucket=settings.subjects.schedules_bucket,
            description="Schedules: each tick's handling (with a TTL), each schedule's last result, pauses.",
            history=1,
            storage=StorageType.FILE,
            replicas=settings.stream_replicas,
            limit_marker_ttl=60.0,  # tick records carry their own TTL (Nats-TTL)
        ),
        KeyValueConfig(
            bucket=settings.subjects.approvals_bucket,
            description="Approvals as people see them, one per escalated revision (the coordinator writes them).",
            history=1,
            ttl=30 * DAY,  # as long as the approvals stream keeps their decisions
            storage=StorageType.FILE,
            replicas=settings.stream_replicas,
        ),
        KeyValueConfig(
            bucket=settings.subjects.gateway_bucket,
            description="The gateway's shared state: idempotency keys, webhook ids, rate windows, leases, A2A tasks.",
            history=1,
            storage=StorageType.FILE,
            replicas=settings.stream_replicas,
            # every key carries its own TTL (Nats-TTL); expiry leaves a marker
            limit_marker_ttl=60.0,
        ),
    ]


def desired_object_stores(settings: BusSettings) -> list[ObjectStoreConfig]:
    return [
        ObjectStoreConfig(
            bucket=settings.subjects.dead_letter_payloads_bucket,
            description="Payloads too large to travel inside their dead-letter record, by record id.",
            ttl=30 * DAY,  # as long as the dead-letter stream keeps the records that point here
            storage=StorageType.FILE,
            replicas=settings.stream_replicas,
        ),
    ]


def consumer_config(settings: BusSettings, spec: ConsumerSpec) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=spec.durable,
        description=spec.description or None,
        filter_subject=spec.filter_subject,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_seconds,
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.max_ack_pending,
    )


_STREAM_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "max_age",
    "max_bytes",
    "max_msgs",
    "duplicate_window",
    "num_replicas",
    "allow_msg_schedules",
    "description",
)
_CONSUMER_FIELDS = ("filter_subject", "ack_wait", "max_deliver", "max_ack_pending", "ack_policy", "description")
_LIMITS = ("max_age", "max_bytes", "max_msgs")  # 0 or -1: unlimited


@dataclass(frozen=True)
class Change:
    """One field of one object that differs from the desired state."""

    name: str
    have: object
    want: object

    @property
    def loss(self) -> str | None:
        """What applying this change would lose, or None when it loses nothing."""
        if self.name == "num_replicas" and (self.have or 1) > (self.want or 1):
            return "fewer copies of each message: losing a node could lose data"
        if self.name in _LIMITS and _shrinks(self.have, self.want):
            return "the server would delete the messages beyond the new limit"
        if self.name == "storage" and self.want == StorageType.MEMORY:
            return "memory storage loses every message when the server restarts"
        if self.name == "retention":
            return "another retention policy removes messages the current one keeps"
        return None

    def __str__(self) -> str:
        return f"{self.name} {_show(self.have)} -> {_show(self.want)}"


def _shrinks(have: object, want: object) -> bool:
    def unlimited(value: object) -> bool:
        return value is None or value <= 0

    return not unlimited(want) and (unlimited(have) or want < have)


def _show(value: object) -> str:
    return repr(value.value if isinstance(value, Enum) else value)


def _diff(current: object, desired: object, fields: tuple[str, ...]) -> list[Change]:
    changes = []
    for name in fields:
        want, have = getattr(desired, name), getattr(current, name)
        if want is None:
            continue
        if isinstance(want, float) and have is not None and abs(float(have) - want) < 1e-6:
            continue
        if want != have and not (want is False and have is None):
            changes.append(Change(name, have, want))
    return changes


def _line(what: str, change: Change) -> str:
    """`stream X: num_replicas 3 -> 1`, followed by what the change would lose, if anything."""
    return f"{what}: {change}" + (f" (a downgrade: {change.loss})" if change.loss else "")


async def provision(
    js: JetStreamContext,
    settings: BusSettings,
    consumers: list[ConsumerSpec] = (),
    *,
    reconcile: bool,
    allow_downgrade: bool = False,
    create: bool = True,
    schedules: Sequence[ScheduleSpec] | None = None,
    schedule_owners: Collection[str] | None = None,
) -> Report:
    """Create whatever is missing; with `reconcile`, also change what drifted, except a
    change that loses durability or data (`Change.loss`) unless `allow_downgrade`: that one
    is left as it is and listed in `Report.refused`. With `create=False` nothing is changed at
    all: what is missing is only listed (`mesh provision --check`).

    `schedules` (None: leave schedules alone) are the agents' declared schedules; with
    `reconcile`, a schedule on the bus that none of them declares is removed — of the agents in
    `schedule_owners` only, or of any agent when None (bus/scheduling/reconcile.py)."""
    report = Report()

    async def make(what: str, action) -> None:
        if create:
            await action()
            report.created.append(what)
        else:
            report.missing.append(what)

    for desired in desired_streams(settings):
        what = f"stream {desired.name}"
        try:
            info = await js.stream_info(desired.name)
        except NotFoundError:
            await make(what, lambda desired=desired: js.add_stream(desired))
            continue
        changes = _diff(info.config, desired, _STREAM_FIELDS)
        refused = [c for c in changes if c.loss and not allow_downgrade]
        applied = [c for c in changes if c not in refused]
        if not changes:
            report.unchanged.append(what)
        elif not reconcile:
            report.drifted += [_line(what, c) for c in changes]
        else:
            if applied:
                # the refused fields keep the server's values; everything else is corrected
                keep = {c.name: getattr(info.config, c.name) for c in refused}
                try:
                    await js.update_stream(replace(desired, **keep))
                except APIError as exc:
                    raise ProvisioningError(
                        f"the server refused to change {what} ({', '.join(map(str, applied))}): {exc.description}; "
                        "some settings (storage, retention) cannot change in place: keep the current value, "
                        "or back the stream up and recreate it"
                    ) from exc
                report.updated += [_line(what, c) for c in applied]
            report.refused += [_line(what, c) for c in refused]

    for bucket in desired_buckets(settings):
        what = f"kv {bucket.bucket}"
        try:
            await js.key_value(bucket.bucket)
            report.unchanged.append(what)
        except BucketNotFoundError:
            await make(what, lambda bucket=bucket: js.create_key_value(bucket))

    for store in desired_object_stores(settings):
        what = f"object store {store.bucket}"
        try:
            await js.object_store(store.bucket)
            report.unchanged.append(what)
        except BucketNotFoundError:
            await make(what, lambda store=store: js.create_object_store(store.bucket, config=store))

    for spec in consumers:
        what = f"consumer {spec.stream}/{spec.durable}"
        desired = consumer_config(settings, spec)
        try:
            info = await js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            await make(what, lambda spec=spec, desired=desired: js.add_consumer(spec.stream, desired))
            continue
        changes = _diff(info.config, desired, _CONSUMER_FIELDS)
        if changes and reconcile:
            await js.add_consumer(spec.stream, desired)  # same durable name: an update
            report.updated += [f"{what}: {c}" for c in changes]
        elif changes:
            report.drifted += [f"{what}: {c}" for c in changes]
        else:
            report.unchanged.append(what)
    if schedules is not None:
        await reconcile_schedules(
            js, settings, schedules, report, reconcile=reconcile, create=create, owners=schedule_owners
        )
    return report
