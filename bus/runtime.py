"""The agent runtime: a FastStream app from a name, a few handlers and the settings.

A service declares *what* it consumes and *what* it does; the runtime owns *how*:

- one durable pull consumer per subscription, shared by every replica of the service;
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
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.msg import Msg
from nats.js.api import PubAck
from pydantic import BaseModel, ValidationError

from bus.connect import connect_options
from bus.deadletters import DeadLetterWriter
from bus.errors import InvalidMessage
from bus.http import json_endpoint, problem
from bus.logs import configure_logging, get_logger
from bus.provision import ConsumerSpec, provision
from bus.settings import MeshSettings

EventT = TypeVar("EventT", bound=BaseModel)
Handler = Callable[[Any, "Delivery"], Awaitable[None]]

# Headers the server or nats-py add, which must never be copied onto a message we publish.
_TRANSPORT_HEADERS = {"Nats-Msg-Id", "Nats-Expected-Stream", "Nats-Expected-Last-Sequence"}


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
    subscriptions: list[Subscription] = field(default_factory=list)
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._app: AsgiFastStream | None = None
        self.log = get_logger(self.name)
        if self.broker is None:
            self.broker = NatsBroker(**connect_options(self.settings, name=self.name), logger=None)
        self.dead_letters = DeadLetterWriter(self.settings, service=self.name, publish=self._publish_raw)

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

    @property
    def consumers(self) -> list[ConsumerSpec]:
        return [s.spec for s in self.subscriptions]

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
        configure_logging(self.settings.log_level, self.settings.log_format)
        for subscription in self.subscriptions:
            self._subscribe(subscription)
        self._app = AsgiFastStream(
            self.broker,
            asgi_routes=[
                ("/healthz", json_endpoint(self._healthz)),
                ("/readyz", json_endpoint(self._readyz)),
                *routes,
            ],
            on_startup=[self._startup],
            after_startup=[self._announce],
            on_shutdown=[self._goodbye],
            logger=None,
        )
        return self._app

    @contextlib.asynccontextmanager
    async def running(self):
        """Run the consumers inside this process, without HTTP (tests, embedding)."""
        self.build_app()
        await self._startup()
        await self.broker.start()
        try:
            yield self
        finally:
            await self.broker.stop()

    def _subscribe(self, sub: Subscription) -> None:
        settings = self.settings

        @self.broker.subscriber(
            sub.subject,
            stream=JStream(sub.spec.stream, declare=False),
            durable=sub.spec.durable,
            pull_sub=PullSub(batch_size=settings.workers, timeout=1.0),
            max_workers=settings.workers,
            ack_policy=AckPolicy.MANUAL,  # we ack, nak and term ourselves, below
            title=f"{self.name}:{sub.spec.durable}",
            description=sub.spec.description,
        )
        async def on_message(msg: NatsMessage) -> None:
            await self._process(sub, msg)

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
        log.info("→ received", type=sub.model.__name__)
        try:
            async with _keep_alive(msg, every=settings_ack_period(self.settings)):
                await sub.handler(event, Delivery(self, raw, log))
        except InvalidMessage as exc:
            await self._dead_letter(msg, log, error_type="invalid", error=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
            if meta.num_delivered >= self.settings.max_deliver:
                await self._dead_letter(msg, log, error_type="failed", error=f"{type(exc).__name__}: {exc}")
                return
            delay = min(2.0 ** (meta.num_delivered - 1), 30.0)
            log.warning("↻ will retry", error=f"{type(exc).__name__}: {exc}", delay=delay)
            await msg.nack(delay=delay)
            return
        await msg.ack()
        log.info("✓ acked", ms=round((time.perf_counter() - started) * 1000, 1))

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
        self.log.info("started", consumers=[f"{c.stream}/{c.durable}" for c in self.consumers])

    async def _goodbye(self) -> None:
        self.log.info("stopping")

    async def _healthz(self, scope: dict) -> tuple[int, Any]:
        return 200, {"status": "ok", "service": self.name}

    async def _readyz(self, scope: dict) -> tuple[int, Any]:
        connection = self.broker.config.broker_config.connection_state.connection if self.broker else None
        if connection is None or not connection.is_connected:
            return 503, problem(503, "Not ready", "not connected to NATS")
        try:
            await connection.flush(timeout=1)  # a real PING/PONG round trip
        except Exception as exc:  # noqa: BLE001
            return 503, problem(503, "Not ready", f"NATS round trip failed: {type(exc).__name__}")
        return 200, {"status": "ready", "service": self.name}


def settings_ack_period(settings: MeshSettings) -> float:
    # Tell the server we are alive well before ack_wait runs out.
    return max(settings.ack_wait_seconds / 3, 0.5)


@contextlib.asynccontextmanager
async def _keep_alive(msg: NatsMessage, *, every: float):
    """Send in-progress acks while the body runs, so a slow model call is never redelivered."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _summarize(exc: ValidationError) -> str:
    """`field.path: message` for each problem, the way a person reads it."""
    parts = []
    for error in exc.errors(include_url=False)[:10]:
        where = ".".join(str(p) for p in error["loc"]) or "(message)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)



def lazy_app(build: Callable[[MeshSettings], Agent]) -> Callable[[str], Any]:
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
            built["app"] = build(MeshSettings()).build_app()
        return built["app"]

    return module_getattr
