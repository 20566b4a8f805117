"""The agent runtime: a FastStream app from a name, a few handlers and the settings.

A service declares *what* it consumes and *what* it does; the runtime owns *how*. Where to look:

- declaring an agent, its card, its HTTP routes and its lifecycle: here (`Agent`);
- what a handler gets: `bus/delivery.py`;
- reading, handling, acking, retrying and dead-lettering messages: `bus/consuming.py`;
- publishing: `bus/publishing.py`;
- schedules (`@agent.scheduled`, `@agent.self_scheduled`) and their ticks: `bus/scheduling/`;
- the hooks for tracing on both paths: `bus/telemetry.py`;
- Prometheus metrics and `GET /metrics`: `bus/metrics.py`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from faststream.asgi import AsgiFastStream
from faststream.nats import NatsBroker
from nats.js.api import PubAck
from pydantic import BaseModel

from bus.card_builder import build_card, contract_name, locate, public_url
from bus.connect import broker_options
from bus.consuming import ConsumePath
from bus.dead_letter_writer import DeadLetterWriter
from bus.delivery import Delivery, Handler, Subscription
from bus.drain import DrainListener, drain_subject, end_this_process
from bus.exhausted import exhausted_subscriptions
from bus.http import cached_document_endpoint, json_endpoint, problem
from bus.logs import configure_logging, get_logger
from bus.metrics import Metrics
from bus.permissions import BucketUse, Permissions, StreamRead, service_permissions
from bus.presence import Presence
from bus.provision import ConsumerSpec, provision
from bus.publishing import Publisher
from bus.scheduling.specs import ScheduleSpec
from bus.scheduling.state import agent_keys
from bus.scheduling.ticks import ScheduledHandler, TickHandler
from bus.serving import ServedApp
from bus.settings import BusSettings
from bus.stateful.handle import StateHandle, attach
from bus.telemetry import Telemetry
from bus.tracing import tracing_from_environment
from contracts.cards import AgentCard, AgentInterface, AgentSkill
from contracts.catalog import json_schema
from contracts.schedules import NextRun, ScheduleDefinition, ScheduleTick

EventT = TypeVar("EventT", bound=BaseModel)
SettingsT = TypeVar("SettingsT", bound=BusSettings)
StateT = TypeVar("StateT", bound=BaseModel)

__all__ = ["Agent", "Delivery", "Handler", "NextRun", "ScheduleTick", "Subscription", "lazy_app"]


@dataclass
class Agent:
    """One deployable service: `Agent("security", settings=...)`, then `@agent.consumes(...)`."""

    name: str
    settings: BusSettings
    description: str = ""
    broker: NatsBroker | None = None
    skills: list[AgentSkill] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    produces: list[tuple[str, type[BaseModel]]] = field(default_factory=list)
    buckets: list[BucketUse] = field(default_factory=list)
    reads: list[StreamRead] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # core-NATS request subjects it sends to
    schedules: list[ScheduleSpec] = field(default_factory=list)  # `@agent.scheduled` / `@agent.self_scheduled`
    daemon: StateHandle | None = field(default=None, init=False)  # `agent.stateful(...)`: a daemon agent
    # Interfaces its HTTP server offers besides the runtime's (a path as the url: `/a2a`), and
    # whether any of them streams: they appear on its card.
    http_interfaces: list[AgentInterface] = field(default_factory=list)
    streaming: bool = False
    # How callers of those interfaces authenticate (A2A `securitySchemes` / `securityRequirements`).
    security_schemes: dict[str, dict] | None = None
    security_requirements: list[dict] | None = None
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # None: tracing as the OTEL_* variables say (bus/tracing.py), else the no-op Telemetry.
    telemetry: Telemetry | None = None
    # How the process ends once drained (`mesh run` stops its HTTP server instead).
    on_drained: Callable[[], Any] = end_this_process

    def __post_init__(self) -> None:
        if self.telemetry is None:
            self.telemetry = tracing_from_environment(self.name) or Telemetry()
        # before the first logger is bound: a bound structlog logger keeps the config it saw
        configure_logging(self.settings.log_level, self.settings.log_format, trace_ids=self.telemetry.traces)
        self._app: AsgiFastStream | None = None
        self._presence: Presence | None = None
        self._drain: DrainListener | None = None
        self.drained = False
        # Where this instance's HTTP API is reachable; `serve_at` corrects it once the port is bound.
        self.url = public_url(self.settings)
        self.log = get_logger(self.name)
        if self.broker is None:
            self.broker = NatsBroker(**broker_options(self.settings, name=self.name), logger=None)
        self.publisher = Publisher(
            service=self.name, broker=self.broker, settings=self.settings, telemetry=self.telemetry
        )
        self.dead_letters = DeadLetterWriter(
            self.settings,
            service=self.name,
            publish=self.publisher.publish_raw,
            connection=lambda: self.broker.connection,
        )
        # Its own registry, served at /metrics; pending counts are read from the server per scrape.
        self.metrics = Metrics(self.name, consumers=lambda: self.consumers, connection=self._connection)
        self.consuming = ConsumePath(
            service=self.name,
            broker=self.broker,
            settings=self.settings,
            publish=self.publisher.publish,
            dead_letters=self.dead_letters,
            telemetry=self.telemetry,
            log=self.log,
            metrics=self.metrics,
        )

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

    def reads_bucket(self, bucket: str) -> None:
        """Declare a KV bucket this agent reads (gets, watches); its identity may do no more."""
        self.buckets.append(BucketUse(bucket))

    def writes_bucket(self, bucket: str, keys: tuple[str, ...] = (">",)) -> None:
        """Declare a KV bucket this agent writes (the keys are subject patterns, `>` for all)."""
        self.buckets.append(BucketUse(bucket, read=True, keys=keys))

    def asks(self, subject: str) -> None:
        """Declare a core-NATS request subject this agent sends to (another service answers on
        it); its identity may publish there and hear the answer on its own inbox."""
        self.requests.append(subject)

    def reads_stream(self, stream: str, subject: str, *, live: bool = True) -> None:
        """Declare a stream this agent reads the last message of a subject from, and follows live
        unless `live=False` (`subject` may be a wildcard); no consumer of its own."""
        self.reads.append(StreamRead(stream, subject, live))

    def stateful(
        self,
        model: type[StateT],
        *,
        checkpoint_every: int = 1,
        checkpoint_seconds: float | None = None,
        chunk_bytes: int | None = None,
    ) -> StateHandle[StateT]:
        """Make this a daemon agent whose state is `model` (a pydantic model with a default for
        every field): kept in memory, changed by `@agent.applies` functions, checkpointed to KV
        every `checkpoint_every` events (and after `checkpoint_seconds`, and whenever the streams
        go quiet), one instance active and the others standing by. See bus/stateful."""
        if self.daemon is not None:
            raise ValueError(f"{self.name} already has a state: call agent.stateful(...) once")
        self.daemon = attach(
            self,
            model,
            checkpoint_every=checkpoint_every,
            checkpoint_seconds=checkpoint_seconds,
            chunk_bytes=chunk_bytes,
        )
        return self.daemon

    def applies(self, *, stream: str, subject: str, model: type[EventT]) -> Callable[[Callable], Callable]:
        """Register `apply(state, event, at: Position) -> list[Effect]` for `model` messages on
        `subject` of `stream`; pure: it changes the state in place and returns what to publish."""
        if self.daemon is None:
            raise ValueError(f"call agent.stateful(Model) on {self.name} before @agent.applies(...)")
        return self.daemon.applies(stream=stream, subject=subject, model=model)

    def scheduled(
        self,
        name: str,
        *,
        cron: str | None = None,
        every: str | timedelta | None = None,
        tz: str | None = None,
        description: str = "",
    ) -> Callable[[ScheduledHandler], ScheduledHandler]:
        """Register `handler(tick: ScheduleTick, delivery)` on a schedule the NATS server keeps:
        `cron` (6 fields, seconds first: `0 0 9 * * *`, in the IANA zone `tz`) or `every` (`6h`, `1s`).

        Each firing is handled once across the agent's replicas; firings missed while every replica
        was down come as one tick with `coalesced` set; the text the handler returns is recorded as
        the tick's result (`mesh schedule show`). See bus/scheduling."""
        spec = ScheduleSpec.recurring(self.name, name, cron=cron, every=every, tz=tz, description=description)
        return self._on_schedule(spec)

    def self_scheduled(
        self,
        name: str,
        *,
        first_in: timedelta,
        min_interval: timedelta,
        max_interval: timedelta,
        description: str = "",
    ) -> Callable[[ScheduledHandler], ScheduledHandler]:
        """Register `handler(tick, delivery) -> NextRun` on a schedule it sets itself: one pending run
        (`@at`) at a time, the first `first_in` after the schedule is created, each next one where the
        handler proposes, clamped to [min_interval, max_interval] after the run (the clamp is recorded)."""
        spec = ScheduleSpec.self_scheduled(
            self.name,
            name,
            first_in=first_in,
            min_interval=min_interval,
            max_interval=max_interval,
            description=description,
        )
        return self._on_schedule(spec)

    def _on_schedule(self, spec: ScheduleSpec) -> Callable[[ScheduledHandler], ScheduledHandler]:
        if any(known.name == spec.name for known in self.schedules):
            raise ValueError(f"{self.name} declares schedule {spec.name!r} twice; give each schedule its own name")

        def register(handler: ScheduledHandler) -> ScheduledHandler:
            s = self.settings.subjects
            self.schedules.append(spec)
            ticks = TickHandler(spec, handler, settings=self.settings, connection=lambda: self.broker.connection)
            subject = s.schedule_tick(self.name, spec.name)
            description = spec.description or f"{self.name}: schedule {spec.name}"
            consumer = ConsumerSpec(s.schedules_stream, spec.durable, subject, description)
            self.subscriptions.append(Subscription(consumer, subject, ScheduleDefinition, ticks))
            # its identity may create its schedule when missing (and set a self-scheduled next run) ...
            self.publishes(s.schedule_definition(self.name, spec.name), ScheduleDefinition)
            # ... and keep its ticks' records (bus/scheduling/state.py)
            if not any(use.bucket == s.schedules_bucket for use in self.buckets):
                self.writes_bucket(s.schedules_bucket, keys=agent_keys(self.name))
            return handler

        return register

    @property
    def permissions(self) -> Permissions:
        """What this agent's NATS identity may do, derived from what it declares (bus/permissions.py)."""
        return service_permissions(
            self.name,
            self.settings,
            consumers=self.consumers,
            publishes=[*(subject for subject, _ in self.produces), *self.requests],
            buckets=self.buckets,
            reads=self.reads,
            follows=self.daemon.follows([subject for subject, _ in self.produces]) if self.daemon else (),
        )

    @property
    def exhausted(self) -> list[Subscription]:
        """Per consumer, one on its max-deliveries advisories (bus/exhausted.py)."""
        return exhausted_subscriptions(
            self.name,
            self.settings,
            self.subscriptions,
            dead_letters=self.dead_letters,
            connection=lambda: self.broker.connection,
        )

    @property
    def consumers(self) -> list[ConsumerSpec]:
        return [s.spec for s in [*self.subscriptions, *self.exhausted]]

    @property
    def card(self) -> AgentCard:
        """This agent's A2A card, derived from its skills, subscriptions and settings; shared by
        all of its instances, so it names no instance's address (`instance_card` does)."""
        card = build_card(
            name=self.name,
            description=self.description,
            skills=self.skills,
            consumes=[
                *((s.subject, s.model) for s in self.subscriptions),
                *((a.subject, a.model) for a in (self.daemon.appliers if self.daemon else ())),
            ],
            produces=self.produces,
            settings=self.settings,
            http_interfaces=self.http_interfaces,
            streaming=self.streaming,
            security_schemes=self.security_schemes,
            security_requirements=self.security_requirements,
        )
        return self.daemon.describe(card, instance=False) if self.daemon else card

    @property
    def instance_card(self) -> AgentCard:
        """The card as this instance serves it: with its HTTP URL and the links to its schemas
        (and, for a daemon agent, whether this instance is the active one)."""
        card = locate(self.card, self.url)
        return self.daemon.describe(card, instance=True) if self.daemon else card

    def serve_at(self, host: str | None, port: int) -> None:
        """Advertise the address the HTTP server listens on (unless MESH_ADVERTISE_URL is set).

        Called before the app starts: by `mesh run` once it has bound its socket, and by
        `ServedApp.run` (`faststream run`) with the host and port it is about to bind."""
        self.url = public_url(self.settings, host=host, port=port)

    # --- what the consume path counts (heartbeats report it) ---------------------------

    @property
    def in_flight(self) -> int:
        return self.consuming.in_flight

    @property
    def handled(self) -> int:
        return self.consuming.handled

    @property
    def _pools(self):
        return self.consuming.pools

    @property
    def _feeds(self):
        return self.consuming.feeds

    # --- publishing ---------------------------------------------------------------------

    async def publish(self, model: BaseModel, subject: str, *, msg_id: str, headers: dict | None = None) -> PubAck:
        return await self.publisher.publish(model, subject, msg_id=msg_id, headers=headers)

    # --- HTTP ---------------------------------------------------------------------------

    def http_routes(self) -> list[tuple[str, Any]]:
        """Health, readiness, metrics, the card and the schemas of every message on the card."""
        routes: list[tuple[str, Any]] = [
            ("/healthz", json_endpoint(self._healthz)),
            ("/readyz", json_endpoint(self._readyz)),
            ("/.well-known/agent-card.json", cached_document_endpoint(lambda: self.instance_card.to_wire())),
            ("/metrics", self.metrics.endpoint()),
        ]
        wire = [(s.subject, s.model) for s in self.subscriptions] + self.produces
        for name in sorted({n for n in (contract_name(m) for _, m in wire) if n}):
            routes.append((f"/schemas/{name}.json", cached_document_endpoint(lambda n=name: json_schema(n))))
        return routes

    async def _healthz(self, scope: dict) -> tuple[int, Any]:
        return 200, {"status": "ok", "service": self.name, **(self.daemon.status() if self.daemon else {})}

    async def readiness(self) -> tuple[int, Any]:
        """(200, body) when a NATS round trip works, (503, problem) otherwise."""
        return await self._readyz({})

    def _connection(self) -> Any:
        """The NATS connection, or None before it exists (never raises, unlike `broker.connection`)."""
        return self.broker.config.broker_config.connection_state.connection if self.broker else None

    async def _readyz(self, scope: dict) -> tuple[int, Any]:
        connection = self._connection()
        if connection is None or not connection.is_connected:
            return 503, problem(503, "Not ready", "not connected to NATS")
        try:
            await connection.flush(timeout=1)  # a real PING/PONG round trip
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return 503, problem(503, "Not ready", f"NATS round trip failed: {type(exc).__name__}")
        return 200, {"status": "ready", "service": self.name, **(self.daemon.status() if self.daemon else {})}

    # --- running ------------------------------------------------------------------------

    def build_app(self, *, routes: list[tuple[str, Any]] = ()) -> AsgiFastStream:
        """The deployable app: consumers plus `/healthz` and `/readyz` (and any extra routes)."""
        if self._app is not None:
            return self._app
        for subscription in [*self.subscriptions, *self.exhausted]:
            self.consuming.subscribe(subscription)
        self._app = ServedApp(
            self.broker,
            settings=self.settings,
            serve_at=self.serve_at,
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

    async def _startup(self) -> None:
        # Runs before any subscriber starts, so handlers never see a half-started service.
        self.telemetry.start()
        await self.broker.connect()
        # Create what is missing; never change what exists (that is `mesh provision`'s job).
        report = await provision(
            self.broker.connection.jetstream(),
            self.settings,
            self.consumers,
            reconcile=False,
            schedules=self.schedules or None,  # its own schedules only, created when missing
        )
        for drift in report.drifted:
            self.log.warning("config drift (run `mesh provision` to reconcile)", drift=drift)
        for hook in self.on_start:
            await hook()

    async def _announce(self) -> None:
        # Only now, with every inbox subscribed, do we ask for messages and tell the mesh we are here.
        await self.consuming.start(self.broker.connection)
        self._presence = Presence(
            nc=self.broker.connection,
            settings=self.settings,
            card=self.card,
            instance_id=self.settings.instance_id,
            url=self.url,
            load=lambda: (self.in_flight, self.handled),
            endpoints=lambda: list(self.consuming.endpoints.values()),
        )
        await self._presence.start()
        self._drain = DrainListener(
            answer={"agent": self.name, "instance": self.settings.instance_id}, on_drain=self.drain
        )
        await self._drain.start(self.broker.connection, drain_subject(self.settings.subjects.control(self.name)))
        self.log.info("started", consumers=[f"{c.stream}/{c.durable}" for c in self.consumers])

    async def drain(self, by: str = "") -> None:
        """Take no more work, finish and ack what is held, leave the registry, then end the
        process (`on_drained`). What was never pulled waits in the stream for the next instance."""
        self.log.info("draining: finishing in-flight work, then exiting", in_flight=self.in_flight, by=by or None)
        await self._stop_working()
        # the acks of what it finished (and the naks handing back what arrived late) are written
        # to the socket, not yet read by the server: a process that ends now would lose them
        with contextlib.suppress(Exception):
            await self.broker.connection.flush(timeout=5)
        self.drained = True
        self.log.info("drained", handled=self.handled)
        self.on_drained()

    async def _leave(self) -> None:
        self.log.info("stopping")
        await self._stop_working()
        for hook in self.on_stop:
            await hook()
        await self.telemetry.flush()  # the last spans, before the process ends

    async def _stop_working(self) -> None:
        # Safe to run twice: a drain runs it, then the shutdown that follows.
        if self._drain:
            await self._drain.stop()
        await self.consuming.stop()
        if self._presence:
            await self._presence.stop()  # gone from the registry at once, not after the TTL
            self._presence = None


def lazy_app(
    build: Callable[[SettingsT], Agent],
    *,
    settings_type: type[SettingsT],
    serve: Callable[[Agent], Any] | None = None,
) -> Callable[[str], Any]:
    """A module `__getattr__` that builds `app` on first access, from `settings_type` (the
    settings class of the service's layer) read from the environment.

    Importing a service module then has no side effects (tests and `mesh provision` call its
    `build(settings)` with their own settings), while `faststream run services.x:app` still
    finds an `app`.
    """
    built: dict[str, Any] = {}

    def module_getattr(name: str) -> Any:
        if name != "app":
            raise AttributeError(name)
        if "app" not in built:
            agent = build(settings_type())
            built["app"] = serve(agent) if serve else agent.build_app()
        return built["app"]

    return module_getattr
