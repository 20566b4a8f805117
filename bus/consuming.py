"""The consume path: how a service reads its durable consumers and handles each message.

- one durable pull consumer per subscription, shared by every replica of the service, read
  through pull requests kept outstanding for exactly the free workers (bus/pull.py);
- explicit acks, sent only after the handler's outputs are published and their PubAcks
  received; in-progress acks while a slow handler (a model call) runs (bus/inflight.py);
- bad input (invalid JSON or schema) goes straight to the dead-letter stream, never retried;
- a failing handler, or one past `MESH_HANDLER_TIMEOUT_SECONDS`, is retried with growing
  delays, then dead-lettered on its last delivery;
- each message passes the telemetry seam once (bus/telemetry.py), from parse to ack: with
  tracing on, one `process` span per delivery, a child of the trace in its headers.
- each message is counted by how it was settled, and timed (bus/metrics.py), and tallied per
  consumer for NATS micro discovery (bus/micro.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from faststream import AckPolicy
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.msg import Msg
from pydantic import ValidationError

from bus.card_builder import contract_name
from bus.connect import inbox_of
from bus.dead_letter_writer import DeadLetterWriter
from bus.delivery import Delivery, Publish, Subscription
from bus.errors import InvalidMessage, NotYet
from bus.inflight import InFlight
from bus.metrics import Metrics
from bus.micro import Endpoint
from bus.pull import PullFeed, new_inbox
from bus.settings import BusSettings
from bus.telemetry import Telemetry
from contracts.validation import describe_errors


class ConsumePath:
    """Every subscription of one service, from pull request to ack."""

    def __init__(
        self,
        *,
        service: str,
        broker: NatsBroker,
        settings: BusSettings,
        publish: Publish,
        dead_letters: DeadLetterWriter,
        telemetry: Telemetry,
        log: Any,
        metrics: Metrics | None = None,
    ) -> None:
        self.service = service
        self.metrics = metrics or Metrics(service)
        self.broker = broker
        self.settings = settings
        self.publish = publish
        self.dead_letters = dead_letters
        self.telemetry = telemetry
        self.log = log
        self.pools: list[InFlight] = []
        self.feeds: list[PullFeed] = []
        self.inboxes: list[Any] = []  # FastStream subscribers on the feeds' inboxes
        self.in_flight = 0
        self.handled = 0
        self.endpoints: dict[str, Endpoint] = {}  # by durable: each consumer's tally, for `$SRV.INFO|STATS`

    def subscribe(self, sub: Subscription) -> None:
        settings = self.settings
        self.endpoints[sub.spec.durable] = self._endpoint(sub)
        # Not FastStream's pull subscriber: its fetch costs a round trip per message or parks
        # messages where no in-progress ack reaches them. A core subscriber on our own inbox,
        # fed by pull requests for exactly the free workers (bus/pull.py, bus/inflight.py).
        pool = InFlight(settings.workers, ack_wait_seconds=settings.ack_wait_seconds, on_error=self._lost_ack)
        feed = PullFeed(
            stream=sub.spec.stream,
            durable=sub.spec.durable,
            inbox=new_inbox(inbox_of(settings, self.service)),
            free=lambda: pool.free,
            on_error=lambda status: self.log.warning("pull request ended", consumer=sub.spec.durable, status=status),
        )
        pool.on_done = feed.wake
        self.pools.append(pool)
        self.feeds.append(feed)

        inbox = self.broker.subscriber(
            feed.inbox,
            ack_policy=AckPolicy.MANUAL,  # we ack, nak and term ourselves, below
            no_reply=True,  # a message's reply subject is its ack subject, not someone awaiting an answer
            parser=_jetstream_message,
            decoder=_the_message_itself,
            title=f"{self.service}:{sub.spec.durable}",
            description=f"{sub.spec.description} (pulled from {sub.spec.stream}/{sub.spec.durable})",
        )
        self.inboxes.append(inbox)

        @inbox
        async def on_message(msg) -> None:
            if feed.heard(msg.raw_message):
                return  # a heartbeat or the end of a pull request: bookkeeping only
            pool.start(msg, lambda: self.process(sub, msg))

    async def start(self, connection: Any) -> None:
        """Ask for messages: only once every inbox is subscribed."""
        for feed in self.feeds:
            await feed.start(connection)

    async def stop(self) -> None:
        """Take no more, hand back what arrived after, finish what we hold."""
        for pool in self.pools:
            pool.refuse_new()
        for feed in self.feeds:
            await feed.stop()
        # Leave the inboxes: the server drops our pull requests (it checks interest), so nothing
        # more arrives to be handed back again and again; what already arrived is handed back.
        for inbox in self.inboxes:
            await _leave_inbox(inbox)
        # Finish what we hold (others get new messages), so a stop is not a redelivery storm.
        timeout = max(self.settings.ack_wait_seconds / 3, 1.0)
        await asyncio.gather(*(pool.drain(timeout=timeout) for pool in self.pools))

    def _endpoint(self, sub: Subscription) -> Endpoint:
        contract = contract_name(sub.model)
        metadata = {
            "stream": sub.spec.stream,
            "durable": sub.spec.durable,
            "contract": contract or sub.model.__name__,
            "description": sub.spec.description,
        }
        if contract:  # a path on this instance's HTTP API (the `url` of the service's metadata)
            metadata["schema"] = f"/schemas/{contract}.json"
        return Endpoint(sub.spec.durable, sub.subject, sub.spec.durable, metadata)

    def _lost_ack(self, exc: BaseException) -> None:
        self.log.warning("ack/nak not sent; JetStream will redeliver", error=f"{type(exc).__name__}: {exc}")

    async def process(self, sub: Subscription, msg: NatsMessage) -> None:
        """Handle one message: validate, run the handler within its budget, then ack, retry or dead-letter."""
        raw: Msg = msg.raw_message
        started = time.perf_counter_ns()
        error: str | None = "not settled: cancelled, or the ack was not sent"
        try:
            with self.metrics.handling(sub.spec.durable, msg), self.telemetry.consuming(self.service, raw):
                error = await self._process(sub, msg, raw)
        finally:
            self.endpoints[sub.spec.durable].tally.record(time.perf_counter_ns() - started, error)

    async def _process(self, sub: Subscription, msg: NatsMessage, raw: Msg) -> str | None:
        """None once acked, else why not (the message was retried or dead-lettered)."""
        meta = raw.metadata
        log = self.log.bind(subject=raw.subject, seq=meta.sequence.stream, delivery=meta.num_delivered)
        started = time.perf_counter()
        try:
            event = sub.model.model_validate_json(raw.data)
        except ValidationError as exc:
            error = "; ".join(describe_errors(exc, limit=10))
            await self._dead_letter(msg, log, error_type="invalid", error=error)
            return error
        log = log.bind(correlation_id=getattr(event, "correlation_id", None))
        self.telemetry.received(event)
        log.debug("→ received", type=sub.model.__name__)  # info would double the log volume
        self.in_flight += 1
        # InFlight keeps the message alive while the handler runs, so a handler that never returns
        # would hold it for ever: past its budget it is cancelled, and that is a failure like any.
        budget = asyncio.timeout(self.settings.handler_timeout_seconds)
        try:
            async with budget:
                await sub.handler(event, Delivery(self.publish, raw, log, self.telemetry))
        except InvalidMessage as exc:
            await self._dead_letter(msg, log, error_type="invalid", error=str(exc))
            return str(exc)
        except NotYet as exc:
            if meta.num_delivered >= self.settings.max_deliver:
                error = f"still not possible on delivery {meta.num_delivered}: {exc.reason}"
                await self._dead_letter(msg, log, error_type="failed", error=error)
                return error
            log.info("⏸ not yet", reason=exc.reason, delay=round(exc.seconds, 3))
            await msg.nack(delay=exc.seconds)
            return f"not yet: {exc.reason}"
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
            error = f"{type(exc).__name__}: {exc}"
            if budget.expired():
                error = (
                    f"handler still running after {self.settings.handler_timeout_seconds:g} s "
                    "(MESH_HANDLER_TIMEOUT_SECONDS); cancelled"
                )
            if meta.num_delivered >= self.settings.max_deliver:
                await self._dead_letter(msg, log, error_type="failed", error=error)
                return error
            delay = min(2.0 ** (meta.num_delivered - 1), 30.0)
            self.telemetry.failed(error)
            log.warning("↻ will retry", error=error, delay=delay)
            await msg.nack(delay=delay)
            return error
        finally:
            self.in_flight -= 1
        self.handled += 1
        await msg.ack()
        log.info("✓ acked", type=sub.model.__name__, ms=round((time.perf_counter() - started) * 1000, 1))
        return None

    async def _dead_letter(self, msg: NatsMessage, log: Any, *, error_type: str, error: str) -> None:
        raw: Msg = msg.raw_message
        self.telemetry.failed(error)
        try:
            with self.telemetry.span("dead-letter", {"error.type": error_type, "mesh.dead_letter.reason": error}):
                await self.dead_letters.write(raw, error_type=error_type, error=error)
        except Exception as exc:  # noqa: BLE001 - could not record it: let JetStream redeliver
            log.error("dead-letter publish failed; will retry", error=str(exc))
            await msg.nack(delay=1.0)
            return
        await msg.reject()  # +TERM: never redelivered
        log.warning("✗ dead-lettered", error_type=error_type, error=error[:300])


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
