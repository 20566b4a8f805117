"""Streams, consumers and KV buckets as code, created or reconciled idempotently.

FastStream keeps a durable consumer's old config silently when it changes, and the last
service to start would overwrite stream settings. So the desired state lives here, once:
services only *create what is missing* when they start; `mesh provision` reconciles drift
and reports every change it made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
from nats.js.errors import BucketNotFoundError, NotFoundError

from bus.settings import BusSettings

DAY = 24 * 3600.0


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


_STREAM_FIELDS = ("subjects", "max_age", "duplicate_window", "num_replicas", "allow_msg_schedules", "description")
_CONSUMER_FIELDS = ("filter_subject", "ack_wait", "max_deliver", "max_ack_pending", "ack_policy", "description")


def _diff(current: object, desired: object, fields: tuple[str, ...]) -> list[str]:
    changes = []
    for name in fields:
        want, have = getattr(desired, name), getattr(current, name)
        if want is None:
            continue
        if isinstance(want, float) and have is not None and abs(float(have) - want) < 1e-6:
            continue
        if want != have and not (want is False and have is None):
            changes.append(f"{name} {have!r} -> {want!r}")
    return changes


async def provision(
    js: JetStreamContext,
    settings: BusSettings,
    consumers: list[ConsumerSpec] = (),
    *,
    reconcile: bool,
) -> Report:
    """Create whatever is missing; with `reconcile`, also change what drifted."""
    report = Report()
    for desired in desired_streams(settings):
        what = f"stream {desired.name}"
        try:
            info = await js.stream_info(desired.name)
        except NotFoundError:
            await js.add_stream(desired)
            report.created.append(what)
            continue
        changes = _diff(info.config, desired, _STREAM_FIELDS)
        if changes and reconcile:
            await js.update_stream(desired)
            report.updated += [f"{what}: {c}" for c in changes]
        elif changes:
            report.drifted += [f"{what}: {c}" for c in changes]
        else:
            report.unchanged.append(what)

    for bucket in desired_buckets(settings):
        what = f"kv {bucket.bucket}"
        try:
            await js.key_value(bucket.bucket)
            report.unchanged.append(what)
        except BucketNotFoundError:
            await js.create_key_value(bucket)
            report.created.append(what)

    for store in desired_object_stores(settings):
        what = f"object store {store.bucket}"
        try:
            await js.object_store(store.bucket)
            report.unchanged.append(what)
        except BucketNotFoundError:
            await js.create_object_store(store.bucket, config=store)
            report.created.append(what)

    for spec in consumers:
        what = f"consumer {spec.stream}/{spec.durable}"
        desired = consumer_config(settings, spec)
        try:
            info = await js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            await js.add_consumer(spec.stream, desired)
            report.created.append(what)
            continue
        changes = _diff(info.config, desired, _CONSUMER_FIELDS)
        if changes and reconcile:
            await js.add_consumer(spec.stream, desired)  # same durable name: an update
            report.updated += [f"{what}: {c}" for c in changes]
        elif changes:
            report.drifted += [f"{what}: {c}" for c in changes]
        else:
            report.unchanged.append(what)
    return report
