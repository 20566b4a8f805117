"""What each identity may do on the broker, derived from what its service declares.

A service declares its durable consumers (`@agent.consumes`), what it publishes
(`agent.publishes`) and the KV buckets it reads or writes (`agent.reads_bucket`,
`agent.writes_bucket`); the runtime adds what every agent does (its card and heartbeats, its
dead letters, its `$SRV` endpoints, operator controls). From that, `service_permissions` writes
the NATS allow lists — nobody writes them by hand, so a new agent gets the right permissions by
declaring its handlers.

Everything not allowed is denied by the server: another agent's review subject, outcomes,
another service's consumer, a bucket it does not own, `$JS.EVENT.>` advisories, stream deletion.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bus.provision import ConsumerSpec, desired_buckets, desired_object_stores, desired_streams
from bus.settings import BusSettings

API = "$JS.API"


@dataclass(frozen=True)
class BucketUse:
    """A KV bucket a service uses: it may read it (gets, watches) and write `keys`."""

    bucket: str
    read: bool = True
    keys: tuple[str, ...] = ()  # subject patterns below `$KV.<bucket>.`; empty: read only


@dataclass(frozen=True)
class StreamRead:
    """A stream a service reads message by message (the last on a subject) and, when `live`,
    whose subject it follows on core NATS, without a consumer of its own."""

    stream: str
    subject: str
    live: bool = True


@dataclass(frozen=True)
class StreamFollow:
    """A stream a daemon agent reads in order from a sequence of its own choosing (bus/stateful),
    through short-lived consumers it creates on its inbox (push, no acks, flow control): it may
    create them on `filters` (all of them at once when there are several) and answer their flow
    control, never pull from or delete anyone's consumer. With no `filters` it may only read
    single messages (the last on one of its own subjects)."""

    stream: str
    filters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Permissions:
    """NATS allow lists of one identity; the server denies everything else."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()
    # may answer requests it received (its `$SRV` endpoints and operator controls)
    responses: bool = False
    inbox: str = "_INBOX"

    def as_config(self) -> dict:
        """The `permissions` block of a user in the server's `authorization` configuration."""
        # an empty allow list means "anything" to nats-server: nothing allowed must be said as a deny
        publish: dict = {"allow": list(self.publish)} if self.publish else {"deny": [">"]}
        if self.deny_publish and self.publish:
            publish["deny"] = list(self.deny_publish)
        config: dict = {"publish": publish, "subscribe": {"allow": list(self.subscribe)}}
        if self.responses:
            config["allow_responses"] = {"max": 1, "expires": "1m"}
        return config


def inbox_prefix(identity: str) -> str:
    """Where an identity's replies and pulled messages arrive; only it may subscribe there."""
    return f"_INBOX.{identity}"


@dataclass
class _Allowed:
    publish: set[str] = field(default_factory=set)
    subscribe: set[str] = field(default_factory=set)

    def permissions(self, inbox: str, *, responses: bool, deny_publish: Iterable[str] = ()) -> Permissions:
        return Permissions(
            publish=tuple(sorted(self.publish)),
            subscribe=tuple(sorted(self.subscribe)),
            deny_publish=tuple(sorted(deny_publish)),
            responses=responses,
            inbox=inbox,
        )


def service_permissions(
    name: str,
    settings: BusSettings,
    *,
    consumers: Iterable[ConsumerSpec],
    publishes: Iterable[str],
    buckets: Iterable[BucketUse],
    reads: Iterable[StreamRead] = (),
    follows: Iterable[StreamFollow] = (),
) -> Permissions:
    """The least a service needs to run: nothing it does not declare (plus the runtime's own)."""
    s = settings.subjects
    allowed = _Allowed()
    pub, sub = allowed.publish, allowed.subscribe
    inbox = inbox_prefix(name)
    sub.add(f"{inbox}.>")
    pub.add(f"{API}.INFO")
    # Starting up checks that every stream and bucket exists (bus/provision.py, ensure mode):
    # reading their configuration is all it may do; creating them is the operator's job.
    pub.update(f"{API}.STREAM.INFO.{stream}" for stream in _all_streams(settings))

    for spec in consumers:
        # its own durable: look at it, create it if missing, pull from it, ack what it got
        pub.add(f"{API}.CONSUMER.INFO.{spec.stream}.{spec.durable}")
        pub.add(f"{API}.CONSUMER.DURABLE.CREATE.{spec.stream}.{spec.durable}")
        pub.add(f"{API}.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}")
        pub.add(f"$JS.ACK.{spec.stream}.{spec.durable}.>")
        # a dead letter copies the original message, read by its stream sequence (bus/exhausted.py)
        pub.add(f"{API}.STREAM.MSG.GET.{spec.stream}")

    pub.update(publishes)
    for follow in follows:
        pub.add(f"{API}.STREAM.MSG.GET.{follow.stream}")
        if len(follow.filters) == 1:  # the filter is part of the API subject: only that one
            pub.add(f"{API}.CONSUMER.CREATE.{follow.stream}.*.{follow.filters[0]}")
        elif follow.filters:  # several filters travel in the request body
            pub.add(f"{API}.CONSUMER.CREATE.{follow.stream}.*")
        if follow.filters:
            pub.add(f"$JS.FC.{follow.stream}.>")
    for read in reads:
        pub.update({f"{API}.STREAM.MSG.GET.{read.stream}", f"{API}.DIRECT.GET.{read.stream}"})
        if read.live:  # a reader by message get alone hears nothing live (dead letters carry payloads)
            sub.add(read.subject)

    # dead letters: its own subject, and the object store for payloads too large to travel
    pub.add(s.dead_letter(name))
    payloads = s.dead_letter_payloads_bucket
    pub.add(f"$O.{payloads}.>")
    # storing an object first looks for one of the same name
    pub.update({f"{API}.STREAM.MSG.GET.OBJ_{payloads}", f"{API}.DIRECT.GET.OBJ_{payloads}"})

    # its card (one key, its name) and its instances' heartbeats, written, never read
    buckets = [
        *buckets,
        BucketUse(s.agents_bucket, read=False, keys=(name,)),
        BucketUse(s.instances_bucket, read=False, keys=(f"{name}.>",)),
    ]
    for use in buckets:
        if use.read:
            pub.update(_reads_stream(f"KV_{use.bucket}"))
        pub.update(f"$KV.{use.bucket}.{key}" for key in use.keys)

    # NATS micro endpoints (`$SRV.PING|INFO|STATS`, bus/presence.py) and operator controls
    sub.update({"$SRV.*", f"$SRV.*.{name}", f"$SRV.*.{name}.*"})
    sub.add(f"{s.control(name)}.>")
    return allowed.permissions(inbox, responses=True)


def operator_permissions(settings: BusSettings, identity: str = "operator") -> Permissions:
    """The CLI's identity: provisioning, events, outcomes, dead letters, admin controls.

    It may not publish outcomes (only the coordinator does), forge the server's advisories, or
    delete a stream. It may publish reviews and deadlines only because replaying a dead letter
    re-publishes it where it came from; every replay carries `Mesh-Replay-Of`.
    """
    s = settings.subjects
    allowed = _Allowed()
    inbox = inbox_prefix(identity)
    # it may watch everything in the namespace (reviews, outcomes, dead letters, admin actions)
    allowed.subscribe.update({f"{inbox}.>", f"{s.namespace}.>"})
    allowed.publish.update(
        {
            f"{API}.>",
            "$JS.ACK.>",
            "$JS.FC.>",
            "$SRV.>",
            # events in; `mesh dlq replay` re-publishes a dead letter to where it came from
            s.events,
            s.reviews,
            s.deadlines,
            s.admin_actions,
            s.traces,  # `mesh up`'s trace store writes the spans its receiver gets (bus/ops/trace_store.py)
            f"{s.namespace}.control.>",
            f"$O.{s.dead_letter_payloads_bucket}.>",
            # `mesh provision` writes schedules, `mesh schedule trigger` fires one, `pause` records itself
            s.schedules,
            f"$KV.{s.schedules_bucket}.>",
            # `mesh approve` / `mesh reject`: decisions as `operator:<name>` only (the coordinator checks)
            s.approval_decisions_via("operator"),
        }
    )
    deny = {f"{API}.STREAM.DELETE.>", f"{API}.ACCOUNT.PURGE.>"}
    return allowed.permissions(inbox, responses=False, deny_publish=deny)


def publisher_permissions(settings: BusSettings, identity: str, events: Iterable[str]) -> Permissions:
    """An external system's identity: publish the named events, read outcomes, nothing else.

    `events` are event types below the events subject (`release.proposed`).
    """
    s = settings.subjects
    allowed = _Allowed()
    inbox = inbox_prefix(identity)
    allowed.subscribe.update({f"{inbox}.>", s.outcomes})
    allowed.publish.update(f"{s.namespace}.events.{event}" for event in events)
    # reading an outcome already decided: the last message on its subject, nothing more
    allowed.publish.update({f"{API}.STREAM.MSG.GET.{s.outcomes_stream}", f"{API}.STREAM.INFO.{s.outcomes_stream}"})
    return allowed.permissions(inbox, responses=False)


def _reads_stream(stream: str) -> set[str]:
    """Read a KV bucket: its info, single keys, and a watch (an ordered consumer that it
    creates, is fed on its inbox with flow control, and deletes)."""
    return {
        f"{API}.STREAM.INFO.{stream}",
        f"{API}.STREAM.MSG.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}.>",
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}.>",
        f"{API}.CONSUMER.INFO.{stream}.*",
        f"{API}.CONSUMER.DELETE.{stream}.*",
        f"$JS.FC.{stream}.>",
    }


def _all_streams(settings: BusSettings) -> list[str]:
    return [
        *(stream.name for stream in desired_streams(settings)),
        *(f"KV_{bucket.bucket}" for bucket in desired_buckets(settings)),
        *(f"OBJ_{store.bucket}" for store in desired_object_stores(settings)),
    ]
