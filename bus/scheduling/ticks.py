"""How a fired tick reaches its handler, once.

The server fires a schedule onto its tick subject; every replica of the agent reads the one
durable consumer of that subject, so each firing goes to one replica. There, for each tick:

1. a tick already `done` or `skipped` (a redelivery) is acked and nothing else happens;
2. a tick with newer ticks waiting behind it — in the stream (`num_pending > 0`: every replica
   was down), or in this process (its handler is slower than its interval) — is skipped:
   recorded, counted, acked. The newest one is handled, with `coalesced` telling how many were
   folded into it;
3. otherwise the tick is claimed (`handling`, with its coalesced count, so a redelivery after a
   crash runs the handler again with the same count), the handler runs, and the tick is
   recorded `done` with its result before it is acked.

A self-scheduled handler returns a `NextRun`; it is clamped to [min_interval, max_interval]
(bus/scheduling/clamp.py) and replaces the schedule's one pending `@at` run (same subject: the
server keeps one schedule per subject). A handler that fails on its last delivery is recorded
as failed, and a self-scheduled one still gets a next run (backing off), so it never stops.

Ticks of one schedule are handled one at a time in a process (a lock, taken in arrival order),
so a burst is skipped oldest first and counted before the newest claims the count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.js.kv import KeyValue

from bus.delivery import Delivery
from bus.scheduling.clamp import clamp_next_run
from bus.scheduling.specs import ScheduleSpec, stamp, tick_from
from bus.scheduling.state import ScheduleStore
from bus.settings import BusSettings
from contracts.deadlines import rfc3339_ceil
from contracts.envelope import utc_now
from contracts.schedules import (
    NextRun,
    NextRunDecision,
    ScheduleDefinition,
    ScheduleResult,
    ScheduleTick,
    TickRecord,
    TickState,
)

ScheduledHandler = Callable[[ScheduleTick, Delivery], Awaitable[Any]]
RESULT_CHARS = 2000


class TickHandler:
    """The consume-path handler of one schedule's ticks, around the agent's own handler."""

    def __init__(
        self,
        spec: ScheduleSpec,
        handler: ScheduledHandler,
        *,
        settings: BusSettings,
        connection: Callable[[], Client],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.spec, self.handler, self.settings = spec, handler, settings
        self.connection, self.clock = connection, clock
        self._lock = asyncio.Lock()
        self._queued: set[int] = set()  # stream sequences of this schedule's ticks held in this process
        self._kv: KeyValue | None = None
        # Our own budget, inside the consume path's: a handler that overruns fails here, where a
        # self-scheduled run can still set its next run, instead of being cancelled from outside.
        timeout = settings.handler_timeout_seconds
        self._budget = max(timeout - 2.0, timeout * 0.8)

    async def _store(self) -> ScheduleStore:
        js = self.connection().jetstream(timeout=self.settings.publish_timeout_seconds)
        if self._kv is None:
            self._kv = await js.key_value(self.settings.subjects.schedules_bucket)
        return ScheduleStore(js, self._kv, self.settings.subjects.schedules_bucket, self.spec.agent, self.spec.name)

    async def __call__(self, fired: ScheduleDefinition, delivery: Delivery) -> None:
        meta = delivery.message.metadata
        tick = tick_from(fired, fired_at=meta.timestamp or self.clock())
        log = delivery.log.bind(schedule=self.spec.full_name, tick_id=tick.tick_id)
        seq = meta.sequence.stream
        self._queued.add(seq)
        try:
            async with self._lock:
                await self._settle(tick, seq, meta.num_pending, delivery, log)
        finally:
            self._queued.discard(seq)

    async def _settle(self, tick: ScheduleTick, seq: int, pending: int, delivery: Delivery, log: Any) -> None:
        store = await self._store()
        record = await store.tick(tick.tick_id)
        if record is not None and record.state in (TickState.DONE, TickState.SKIPPED, TickState.FAILED):
            log.info("↷ tick already settled; acking again", state=record.state.value)
            return
        if record is None:
            # newer ticks wait in the stream, or here behind this one (a handler slower than its interval)
            waiting = pending + sum(1 for other in self._queued if other > seq)
            if waiting:
                await self._skip(store, tick, log, waiting=waiting)
                return
            coalesced = await store.take_coalesced()
            claim = TickRecord(
                tick_id=tick.tick_id,
                state=TickState.HANDLING,
                coalesced=coalesced,
                instance=self.settings.instance_id,
            )
            if not await store.claim_tick(claim):
                record = await store.tick(tick.tick_id) or claim  # claimed between our read and write
                coalesced = record.coalesced
        else:
            coalesced = record.coalesced  # a redelivery of a tick whose handling never finished
        tick = tick.model_copy(update={"coalesced": coalesced})
        await self._handle(store, tick, delivery, log)

    async def _skip(self, store: ScheduleStore, tick: ScheduleTick, log: Any, *, waiting: int) -> None:
        skipped = TickRecord(tick_id=tick.tick_id, state=TickState.SKIPPED, instance=self.settings.instance_id)
        if await store.claim_tick(skipped):
            await store.add_coalesced()
        log.info("↷ tick skipped: a newer one is waiting and will be handled", waiting=waiting)

    async def _handle(self, store: ScheduleStore, tick: ScheduleTick, delivery: Delivery, log: Any) -> None:
        try:
            async with asyncio.timeout(self._budget):
                outcome = await self.handler(tick, delivery)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TimeoutError):
                error = f"handler still running after {self._budget:g} s; cancelled"
            if delivery.deliveries >= self.settings.max_deliver:  # the consume path dead-letters it next
                await self._failed(store, tick, error, log)
            raise
        decision: NextRunDecision | None = None
        text = outcome if isinstance(outcome, str) else None
        if self.spec.is_self_scheduled:
            decision = self._next_run(outcome if isinstance(outcome, NextRun) else None)
            text = await self._arm(store, decision, log)
        await store.set_tick(
            TickRecord(
                tick_id=tick.tick_id, state=TickState.DONE, coalesced=tick.coalesced, instance=self.settings.instance_id
            )
        )
        await store.record_last(self._result(tick, ok=True, result=text, next_run=decision))
        log.info(
            "⏰ tick handled",
            scheduled_for=stamp(tick.scheduled_for),
            coalesced=tick.coalesced,
            manual=tick.manual,
            result=(text or "")[:200] or None,
        )

    def _next_run(self, proposal: NextRun | None) -> NextRunDecision:
        """The proposal clamped to the schedule's bounds, its time as the `@at` header will say it."""
        decision = clamp_next_run(
            proposal, now=self.clock(), min_interval=self.spec.min_interval, max_interval=self.spec.max_interval
        )
        on_the_wire = datetime.fromisoformat(rfc3339_ceil(decision.used).replace("Z", "+00:00"))
        return decision.model_copy(update={"used": on_the_wire})

    async def _arm(self, store: ScheduleStore, decision: NextRunDecision, log: Any) -> str:
        """Replace the schedule's pending run with `decision.used` (unless it is paused)."""
        if await store.paused() is not None:
            log.info("paused: no next run set", proposed=decision.note)
            return f"paused: no next run set ({decision.note})"
        used = decision.used
        body, headers = self.spec.message(self.settings.subjects, at=used, reason=decision.reason)
        await store.js.publish(
            self.settings.subjects.schedule_definition(self.spec.agent, self.spec.name), body, headers=headers
        )
        log.info(
            "next run set",
            next_run=stamp(used),
            proposed=stamp(decision.proposed) if decision.proposed else None,
            clamped=decision.clamped,
            note=decision.note,
            reason=decision.reason or None,
        )
        text = f"next run {stamp(used)}: {decision.note}"
        return text + (f"; {decision.reason}" if decision.reason else "")

    async def _failed(self, store: ScheduleStore, tick: ScheduleTick, error: str, log: Any) -> None:
        """The last delivery failed: record it, and give a self-scheduled agent its next run anyway."""
        last = await store.last()
        failures = (last.failures if last else 0) + 1
        decision = None
        text = None
        if self.spec.is_self_scheduled:
            # back off while it keeps failing: min_interval, doubling, at most max_interval
            delay = min(self.spec.min_interval * 2 ** min(failures - 1, 30), self.spec.max_interval)
            decision = self._next_run(
                NextRun(after=delay, reason=f"handler failed ({failures} in a row): {error[:200]}")
            )
            text = await self._arm(store, decision, log)
        await store.set_tick(
            TickRecord(
                tick_id=tick.tick_id,
                state=TickState.FAILED,
                coalesced=tick.coalesced,
                instance=self.settings.instance_id,
            )
        )
        await store.record_last(
            self._result(tick, ok=False, result=text, error=error, next_run=decision, failures=failures)
        )
        log.warning("tick failed on its last delivery", error=error[:300], failures=failures)

    def _result(self, tick: ScheduleTick, **fields: Any) -> ScheduleResult:
        result = fields.pop("result", None)
        return ScheduleResult(
            tick_id=tick.tick_id,
            scheduled_for=tick.scheduled_for,
            fired_at=tick.fired_at,
            handled_at=self.clock(),
            coalesced=tick.coalesced,
            manual=tick.manual,
            result=result[:RESULT_CHARS] if result else None,
            instance=self.settings.instance_id,
            **fields,
        )
