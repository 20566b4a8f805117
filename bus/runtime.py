"""The agent runtime: a FastStream app from a name, a few handlers and the settings.

A service declares *what* it consumes and *what* it does; the runtime owns *how*:

- one durable pull consumer per subscription, shared by every replica of the service, read
  through pull requests kept outstanding for exactly the free workers (bus/pull.py);
- explicit acks, sent only after the handler's outputs are published and their PubAcks
  received; in-progress acks while a slow handler (a model call) runs;
- bad input (invalid JSON or schema) goes straight to the dead-letter stream, never retried;
- a failing handler is retried with growing delays, then dead-lettered on its last delivery;
- one structured log line per message event; `/healthz` and `/readyz` over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.msg import Msg
from nats.js.api import PubAck
from pydantic import BaseModel, ValidationError

from bus.connect import broker_options
from bus.deadletters import DeadLetterWriter
from bus.errors import InvalidMessage
from bus.exhausted import exhausted_subscriptions
from bus.inflight import InFlight
from bus.pull import PullFeed, new_inbox
from bus.cards import build_card, contract_name, public_url
from bus.http import cached_document_endpoint, json_endpoint, problem
from bus.logs import configure_logging, get_logger
from bus.presence import Presence
from bus.provision import ConsumerSpec, provision
from bus.settings import MeshSettings
from contracts.cards import AgentCard, AgentSkill
from contracts.catalog import json_schema

EventT = TypeVar("EventT", bound=BaseModel)
Handler = Callable[[Any, "Delivery"], Awaitable[None]]


@dataclass
class Delivery:
    """What a handler gets besides its event: how to publish results, and delivery facts."""

    agent: Agent
    message: Msg
    log: Any

    @property
    def deliveries(self) -> int:
        return self.message.metadata.num_delivered

    async def publish(self, model: BaseModel, subject: str, *, msg_id: str, headers: dict | None = None) -> PubAck:
        """Publish and wait for the PubAck. `msg_id` makes a redelivered handler's publish a no-op."""
        return await self.agent.publish(model, subject, msg_id=msg_id, headers=headers)


@dataclass
class Subscription:
    spec: ConsumerSpec
    subject: str
    model: type[BaseModel]
    handler: Handler


@dataclass
class Agent:
    """One deployable service: `Agent("security", settings=...)`, then `@agent.consumes(...)`."""

    name: str
    settings: MeshSettings
    description: str = ""
    broker: NatsBroker | None = None
    skills: list[AgentSkill] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    produces: list[tuple[str, type[BaseModel]]] = field(default_factory=list)
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # before the first logger is bound: a bound structlog logger keeps the config it saw
        configure_logging(self.settings.log_level, self.settings.log_format)
        self._app: AsgiFastStream | None = None
        self._presence: Presence | None = None
        self._pools: list[InFlight] = []
        self._feeds: list[PullFeed] = []
        self._inboxes: list[Any] = []  # FastStream subscribers on the feeds' inboxes
        self.in_flight = 0
        self.handled = 0
        self.log = get_logger(self.name)
        if self.broker is None:
            self.broker = NatsBroker(**broker_options(self.settings, name=self.name), logger=None)
        self.dead_letters = DeadLetterWriter(self.settings, service=self.name, publish=self._publish_raw,
                                             connection=lambda: self.broker.connection)  # fmt: skip

    # --- declaring ----------------------------------------------------------------------

    def consumes(
        self, *, stream: str, subject: str, model: type[EventT], durable: str | None = None, description: str = ""
    ) -> Callable[[Handler], Handler]:
        """Register `handler(event, delivery)` for `model` messages on `subject`."""

        def register(handler: Handler) -> Handler:
            spec = ConsumerSpec(stream, durable or self.name, subject, description or f"{self.name}: {subject}")
            self.subscriptions.append(Subscription(spec, subject, model, handler))
            return handler

        return register

    def publishes(self, subject: str, model: type[BaseModel]) -> None:
        """Declare what this agent publishes (it appears on the card, with its schema)."""
        self.produces.append((subject, model))

    @property
    def consumers(self) -> list[ConsumerSpec]:
        # and, per consumer, one on its max-deliveries advisories (bus/exhausted.py)
        return [s.spec for s in [*self.subscriptions, *exhausted_subscriptions(self)]]

    @property
    def card(self) -> AgentCard:
        """This agent's A2A card, derived from its skills, subscriptions and settings."""
        return build_card(
            name=self.name,
            description=self.description,
            skills=self.skills,
            consumes=[(s.subject, s.model) for s in self.subscriptions],
            produces=self.produces,
            settings=self.settings,
        )

    def http_routes(self) -> list[tuple[str, Any]]:
        """Health, readiness, the card and the schemas of every message on the card."""
        card = self.card.to_wire()
        routes: list[tuple[str, Any]] = [
            ("/healthz", json_endpoint(self._healthz)),
            ("/readyz", json_endpoint(self._readyz)),
            ("/.well-known/agent-card.json", cached_document_endpoint(lambda: card)),
        ]
        wire = [(s.subject, s.model) for s in self.subscriptions] + self.produces
        for name in sorted({n for n in (contract_name(m) for _, m in wire) if n}):
            routes.append((f"/schemas/{name}.json", cached_document_endpoint(lambda n=name: json_schema(n))))
        return routes

    # --- publishing ---------------------------------------------------------------------

    async def publish(self, model: BaseModel, subject: str, *, msg_id: str, headers: dict | None = None) -> PubAck:
        correlation = getattr(model, "correlation_id", None) or None
        all_headers = {**(headers or {}), "Nats-Msg-Id": msg_id, "content-type": "application/json"}
        return await self._publish_raw(model.model_dump_json().encode(), subject, all_headers, correlation)

    async def _publish_raw(self, data: bytes, subject: str, headers: dict, correlation: str | None = None) -> PubAck:
        ack = await self.broker.publish(
            data,
            subject,
            headers=headers,
            correlation_id=correlation,
            stream=self.settings.subjects.stream_for(subject),  # a JetStream publish: wait for its PubAck
            timeout=self.settings.publish_timeout_seconds,
        )
        return ack

    # --- running ------------------------------------------------------------------------

    def build_app(self, *, routes: list[tuple[str, Any]] = ()) -> AsgiFastStream:
        """The deployable app: consumers plus `/healthz` and `/readyz` (and any extra routes)."""
        if self._app is not None:
            return self._app
        for subscription in [*self.subscriptions, *exhausted_subscriptions(self)]:
            self._subscribe(subscription)
        self._app = AsgiFastStream(
            self.broker,
            asgi_routes=[*self.http_routes(), *routes],
            on_startup=[self._startup],
            after_startup=[self._announce],
            on_shutdown=[self._leave],
            logger=None,
        )
        return self._app

    @contextlib.asynccontextmanager
    async def running(self):
        """Run the consumers inside this process, without HTTP (tests, embedding)."""
        self.build_app()
        await self._startup()
        await self.broker.start()
        await self._announce()
        try:
            yield self
        finally:
            await self._leave()
            await self.broker.stop()

    def _subscribe(self, sub: Subscription) -> None:
        settings = self.settings
        # Not FastStream's pull subscriber: its fetch costs a round trip per message or parks
        # messages where no in-progress ack reaches them. A core subscriber on our own inbox,
        # fed by pull requests for exactly the free workers (bus/pull.py, bus/inflight.py).
        pool = InFlight(settings.workers, ack_wait_seconds=settings.ack_wait_seconds, on_error=self._lost_ack)
        feed = PullFeed(
            stream=sub.spec.stream,
            durable=sub.spec.durable,
            inbox=new_inbox(self.name),
            free=lambda: pool.free,
            on_error=lambda status: self.log.warning("pull request ended", consumer=sub.spec.durable, status=status),
        )
        pool.on_done = feed.wake
        self._pools.append(pool)
        self._feeds.append(feed)

        inbox = self.broker.subscriber(
            feed.inbox,
            ack_policy=AckPolicy.MANUAL,  # we ack, nak and term ourselves, below
            no_reply=True,  # a message's reply subject is its ack subject, not someone awaiting an answer
            parser=_jetstream_message,
            decoder=_the_message_itself,
            title=f"{self.name}:{sub.spec.durable}",
            description=f"{sub.spec.description} (pulled from {sub.spec.stream}/{sub.spec.durable})",
        )
        self._inboxes.append(inbox)

        @inbox
        async def on_message(msg) -> None:  # noqa: ANN001 - no annotation: nothing for FastDepends to inject
            if feed.heard(msg.raw_message):
                return  # a heartbeat or the end of a pull request: bookkeeping only
            pool.start(msg, lambda: self._process(sub, msg))

    def _lost_ack(self, exc: BaseException) -> None:
        self.log.warning("ack/nak not sent; JetStream will redeliver", error=f"{type(exc).__name__}: {exc}")

    async def _process(self, sub: Subscription, msg: NatsMessage) -> None:
        raw: Msg = msg.raw_message
        meta = raw.metadata
        log = self.log.bind(subject=raw.subject, seq=meta.sequence.stream, delivery=meta.num_delivered)
        started = time.perf_counter()
        try:
            event = sub.model.model_validate_json(raw.data)
        except ValidationError as exc:
            await self._dead_letter(msg, log, error_type="invalid", error=_summarize(exc))
            return
        log = log.bind(correlation_id=getattr(event, "correlation_id", None))
        log.debug("→ received", type=sub.model.__name__)  # info would double the log volume
        self.in_flight += 1
        # InFlight keeps the message alive while the handler runs, so a handler that never returns
        # would hold it for ever: past its budget it is cancelled, and that is a failure like any.
        budget = asyncio.timeout(self.settings.handler_timeout_seconds)
        try:
            async with budget:
                await sub.handler(event, Delivery(self, raw, log))
        except InvalidMessage as exc:
            await self._dead_letter(msg, log, error_type="invalid", error=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
            error = f"{type(exc).__name__}: {exc}"
            if budget.expired():
                error = (f"handler still running after {self.settings.handler_timeout_seconds:g} s "
                         "(MESH_HANDLER_TIMEOUT_SECONDS); cancelled")  # fmt: skip
            if meta.num_delivered >= self.settings.max_deliver:
                await self._dead_letter(msg, log, error_type="failed", error=error)
                return
            delay = min(2.0 ** (meta.num_delivered - 1), 30.0)
            log.warning("↻ will retry", error=error, delay=delay)
            await msg.nack(delay=delay)
            return
        finally:
            self.in_flight -= 1
        self.handled += 1
        await msg.ack()
        log.info("✓ acked", type=sub.model.__name__, ms=round((time.perf_counter() - started) * 1000, 1))

    async def _dead_letter(self, msg: NatsMessage, log: Any, *, error_type: str, error: str) -> None:
        raw: Msg = msg.raw_message
        try:
            await self.dead_letters.write(raw, error_type=error_type, error=error)
        except Exception as exc:  # noqa: BLE001 - could not record it: let JetStream redeliver
            log.error("dead-letter publish failed; will retry", error=str(exc))
            await msg.nack(delay=1.0)
            return
        await msg.reject()  # +TERM: never redelivered
        log.warning("✗ dead-lettered", error_type=error_type, error=error[:300])

    async def _startup(self) -> None:
        # Runs before any subscriber starts, so handlers never see a half-started service.
        await self.broker.connect()
        # Create what is missing; never change what exists (that is `mesh provision`'s job).
        report = await provision(self.broker.connection.jetstream(), self.settings, self.consumers, reconcile=False)
        for drift in report.drifted:
            self.log.warning("config drift (run `mesh provision` to reconcile)", drift=drift)
        for hook in self.on_start:
            await hook()

    async def _announce(self) -> None:
        # Only now, with every inbox subscribed, do we ask for messages and tell the mesh we are here.
        for feed in self._feeds:
            await feed.start(self.broker.connection)
        self._presence = Presence(
            nc=self.broker.connection,
            settings=self.settings,
            card=self.card,
            instance_id=self.settings.instance_id,
            url=public_url(self.settings),
            load=lambda: (self.in_flight, self.handled),
        )
        await self._presence.start()
        self.log.info("started", consumers=[f"{c.stream}/{c.durable}" for c in self.consumers])

    async def _leave(self) -> None:
        self.log.info("stopping")
        for pool in self._pools:
            pool.refuse_new()
        for feed in self._feeds:
            await feed.stop()
        # Leave the inboxes: the server drops our pull requests (it checks interest), so nothing
        # more arrives to be handed back again and again; what already arrived is handed back.
        for inbox in self._inboxes:
            await _leave_inbox(inbox)
        # Finish what we hold (others get new messages), so a stop is not a redelivery storm.
        timeout = max(self.settings.ack_wait_seconds / 3, 1.0)
        await asyncio.gather(*(pool.drain(timeout=timeout) for pool in self._pools))
        if self._presence:
            await self._presence.stop()  # gone from the registry at once, not after the TTL
            self._presence = None
        for hook in self.on_stop:
            await hook()

    async def _healthz(self, scope: dict) -> tuple[int, Any]:
        return 200, {"status": "ok", "service": self.name}

    async def readiness(self) -> tuple[int, Any]:
        """(200, body) when a NATS round trip works, (503, problem) otherwise."""
        return await self._readyz({})

    async def _readyz(self, scope: dict) -> tuple[int, Any]:
        connection = self.broker.config.broker_config.connection_state.connection if self.broker else None
        if connection is None or not connection.is_connected:
            return 503, problem(503, "Not ready", "not connected to NATS")
        try:
            await connection.flush(timeout=1)  # a real PING/PONG round trip
        except Exception as exc:  # noqa: BLE001
            return 503, problem(503, "Not ready", f"NATS round trip failed: {type(exc).__name__}")
        return 200, {"status": "ready", "service": self.name}


async def _leave_inbox(inbox: Any) -> None:
    """Unsubscribe, letting what already arrived reach the handler (which hands it back)."""
    subscription = getattr(inbox, "subscription", None)
    if subscription is not None:
        with contextlib.suppress(Exception):  # NATS away: the server drops the requests anyway
            await subscription.drain()
        inbox.subscription = None  # drained is unsubscribed: FastStream's stop must not unsubscribe again


async def _jetstream_message(msg: Msg) -> NatsMessage:
    """FastStream parser for JetStream messages arriving on a core (inbox) subscription.

    FastStream's core parser marks every message acknowledged (core NATS has no acks) and takes
    its reply subject as an RPC reply address; for these the reply subject is the JetStream ack
    subject, which we answer only with an explicit ack, nak or term.
    """
    headers = msg.headers or {}
    return NatsMessage(
        raw_message=msg,
        body=msg.data,
        reply_to="",
        headers=headers,
        content_type=headers.get("content-type", ""),
        message_id=headers.get("Nats-Msg-Id", ""),
        correlation_id=headers.get("correlation_id", ""),
    )


async def _the_message_itself(msg: NatsMessage) -> NatsMessage:
    """FastStream decoder that hands the handler the message itself.

    `_process` validates the raw bytes with the contract model once. FastStream's own JSON
    decode, and its context injection of a `NatsMessage` argument (a sync resolver that
    FastDepends runs in a worker thread, for every message), would only add cost.
    """
    return msg


def _summarize(exc: ValidationError) -> str:
    """`field.path: message` for each problem, the way a person reads it."""
    parts = []
    for error in exc.errors(include_url=False)[:10]:
        where = ".".join(str(p) for p in error["loc"]) or "(message)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)



def lazy_app(
    build: Callable[[MeshSettings], Agent], *, serve: Callable[[Agent], Any] | None = None
) -> Callable[[str], Any]:
    """A module `__getattr__` that builds `app` from the environment on first access.

    Importing a service module then has no side effects (tests and `mesh provision` call its
    `build(settings)` with their own settings), while `faststream run services.x:app` still
    finds an `app`.
    """
    built: dict[str, Any] = {}

    def module_getattr(name: str) -> Any:
        if name != "app":
            raise AttributeError(name)
        if "app" not in built:
            agent = build(MeshSettings())
            built["app"] = serve(agent) if serve else agent.build_app()
        return built["app"]

    return module_getattr
