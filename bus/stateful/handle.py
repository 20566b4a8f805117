"""A daemon agent's state at run time: one instance active, the others standing by.

Every instance starts as a standby and tries for the lease (bus/stateful/lease.py). The one that
wins it *takes over*: it reads the checkpoint, writes it back under its own name and fencing
token (compare-and-set: from then on no older active instance can write), purges chunks nobody
names, publishes the checkpoint's pending effects that the streams do not hold yet, and reads each
stream from right after the checkpointed position. It applies events one at a time, in stream
order per stream, and checkpoints every `checkpoint_every` events, after `checkpoint_seconds`, and
whenever the streams go quiet; the effects leave once their checkpoint is written.

It stops applying — steps down to standby — the moment it cannot be sure it is still the active
one: its lease was not renewed in time (it was frozen, or cut off from NATS), or a checkpoint
write found that someone else wrote since. What it applied after its last checkpoint is dropped;
its successor replays those events from the streams.

A standby keeps a copy of the latest checkpoint's state (at most a second old) for read-only
views, and polls the lease often enough to take over within about `daemon_lease_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from bus.errors import CheckpointUnreadable, LeaseLost
from bus.permissions import BucketUse, StreamFollow
from bus.settings import BusSettings
from bus.stateful.appliers import Applier, Effect, Position
from bus.stateful.checkpoint import HEADER_ROOM, Checkpoint, CheckpointStore, ChunkRef, StoredEffect
from bus.stateful.lease import Lease
from bus.stateful.merge import Merge
from bus.stateful.metrics import DaemonMetrics
from bus.stateful.outbox import Outbox, Publish
from bus.stateful.reader import OrderedReader
from contracts.cards import AgentCard, AgentExtension
from contracts.envelope import utc_now

StateT = TypeVar("StateT", bound=BaseModel)
EventT = TypeVar("EventT", bound=BaseModel)

DAEMON_EXTENSION = "urn:agent-mesh:ext:daemon:v1"
QUIET_SECONDS = 0.2  # no event for this long: checkpoint what is unsaved (so effects never wait)
REFRESH_SECONDS = 1.0  # how stale a standby's copy of the state may be
RETRY_SECONDS = 1.0  # after an error that was not a lost lease


class StateHandle(Generic[StateT]):
    """The state of one daemon agent (`agent.stateful(Model)`): `current`, `active`, `applied`."""

    def __init__(
        self,
        model: type[StateT],
        *,
        agent: str,
        settings: BusSettings,
        checkpoint_every: int = 1,
        checkpoint_seconds: float | None = None,
        chunk_bytes: int | None = None,
        log: Any,
        metrics: DaemonMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be 1 or more, not {checkpoint_every}")
        if checkpoint_seconds is not None and checkpoint_seconds <= 0:
            raise ValueError(f"checkpoint_seconds must be more than 0 (or None), not {checkpoint_seconds}")
        try:
            initial = model()
        except ValidationError:
            raise ValueError(
                f"{model.__name__} needs a default for every field: a daemon starts from `{model.__name__}()`"
            ) from None
        self.model = model
        self.agent = agent
        self.settings = settings
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.chunk_bytes = chunk_bytes
        self.appliers: list[Applier] = []
        self.current: StateT = initial
        self.active = False
        self.applied: dict[str, int] = {}
        self._log = log
        self._metrics = metrics
        self._clock = clock
        self._instance = settings.instance_id
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._merge: Merge | None = None
        # the checkpoint as last read or written
        self._revision = 0
        self._chunks: ChunkRef | None = None
        self._saved_state = b""
        self._checkpointed_at: str | None = None
        self._size = 0
        # what was applied since
        self._unsaved: list[tuple[Applier, BaseModel, Position]] = []
        self._read_since = 0  # events read since the checkpoint (skipped ones too)
        self._first_unsaved_at: float | None = None
        self._total = 0  # events applied by every instance since the daemon first started
        self._active_holder: str | None = None
        self._stepped_down: dict | None = None
        self._next_refresh = 0.0
        self._leading = False

    # --- declaring ----------------------------------------------------------------------

    def applies(
        self, *, stream: str, subject: str, model: type[EventT]
    ) -> Callable[[Callable[[StateT, EventT, Position], list[Effect] | None]], Any]:
        """Register `apply(state, event, at) -> list[Effect]` for `model` messages on `subject`."""

        def register(apply: Callable) -> Callable:
            self.appliers.append(Applier(stream, subject, model, apply))
            return apply

        return register

    @property
    def streams(self) -> dict[str, list[str]]:
        """Each stream applied from, with its subject filters, in declaration order."""
        streams: dict[str, list[str]] = {}
        for applier in self.appliers:
            filters = streams.setdefault(applier.stream, [])
            if applier.subject not in filters:
                filters.append(applier.subject)
        return streams

    def follows(self, publishes: list[str]) -> list[StreamFollow]:
        """What its identity needs: to follow each stream it applies from, and to read the last
        message on each subject it publishes (to find effects published before a crash)."""
        follows = [StreamFollow(stream, tuple(filters)) for stream, filters in self.streams.items()]
        effect_streams = set()
        for subject in publishes:
            with contextlib.suppress(ValueError):  # a subject no stream stores cannot carry an effect
                effect_streams.add(self.settings.subjects.stream_for(subject))
        return follows + [StreamFollow(stream) for stream in sorted(effect_streams - set(self.streams))]

    # --- what it says about itself -----------------------------------------------------

    @property
    def role(self) -> str:
        return "active" if self.active else "standby"

    def status(self) -> dict:
        """For `/readyz` and `/healthz`: this instance's role and how far its state has got."""
        daemon: dict[str, Any] = {
            "instance": self._instance,
            "applied": dict(self.applied),
            "events_applied": self._total,
            "checkpoint": {
                "revision": self._revision,
                "written_at": self._checkpointed_at,
                "bytes": self._size,
                "chunks": self._chunks.count if self._chunks else 0,
                "every_events": self.checkpoint_every,
                "every_seconds": self.checkpoint_seconds,
            },
            "lease_seconds": self.settings.daemon_lease_seconds,
        }
        if not self.active and self._active_holder:
            daemon["active_instance"] = self._active_holder
        if self._stepped_down:
            daemon["stepped_down"] = self._stepped_down
        return {"role": self.role, "daemon": daemon}

    def describe(self, card: AgentCard, *, instance: bool) -> AgentCard:
        """`card` with this daemon's extension; on an instance's own card, with its role too."""
        others = [e for e in card.capabilities.extensions if e.uri != DAEMON_EXTENSION]
        extensions = [*others, self.card_extension(instance=instance)]
        return card.model_copy(update={"capabilities": card.capabilities.model_copy(update={"extensions": extensions})})

    def card_extension(self, *, instance: bool) -> AgentExtension:
        params: dict[str, Any] = {
            "applies": [{"stream": a.stream, "subject": a.subject} for a in self.appliers],
            "checkpointEveryEvents": self.checkpoint_every,
            "checkpointEverySeconds": self.checkpoint_seconds,
            "leaseSeconds": self.settings.daemon_lease_seconds,
        }
        if instance:
            params["role"] = self.role
        return AgentExtension(
            uri=DAEMON_EXTENSION,
            description="A daemon agent: one active instance applies events to its state, checkpointed to KV; "
            "the other instances stand by to take over.",
            params=params,
        )

    # --- running ------------------------------------------------------------------------

    async def start(self, nc: Client, publish: Publish) -> None:
        """Start standing by, then leading when the lease is won (in a task of its own)."""
        if not self.appliers:
            raise ValueError(f"{self.agent} is stateful but applies nothing: add an @agent.applies(...) function")
        js = nc.jetstream()
        bucket = self.settings.subjects.daemons_bucket
        self._nc = nc
        self._lease = Lease(
            js, bucket=bucket, key=f"{self.agent}.lease", holder=self._instance, ttl=self.settings.daemon_lease_seconds
        )
        self._store = CheckpointStore(
            js, bucket=bucket, agent=self.agent, chunk_bytes=self.chunk_bytes or nc.max_payload - HEADER_ROOM
        )
        self._outbox = Outbox(
            js=js,
            publish=publish,
            stream_for=self.settings.subjects.stream_for,
            log=self._log,
            counted=self._metrics.effects,
        )
        self._stopping.clear()
        self._metrics.active(False)
        self._task = asyncio.create_task(self._run(), name=f"{self.agent}-daemon")

    async def stop(self, timeout: float = 10.0) -> None:
        """Checkpoint what is applied, publish its effects, give the lease up; then stop."""
        if self._task is None:
            return
        self._stopping.set()
        if self._merge is not None:
            self._merge.wake()  # the applier looks up
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        if not done:
            await _cancel([self._task])
        self._task = None

    async def _run(self) -> None:
        self._log.info("standby: waiting for the lease", instance=self._instance)
        while not self._stopping.is_set():
            try:
                if await self._stand_by():
                    await self._lead()
            except LeaseLost as lost:
                self._step_down(str(lost), "lease")
                self._lease.forget()
            except CheckpointUnreadable as exc:
                self._step_down(str(exc), "error")
                await self._give_up_lease()
                await self._pause(5 * RETRY_SECONDS)
            except Exception as exc:  # noqa: BLE001 - NATS away, a refused write: stand by, then try again
                self._step_down(f"{type(exc).__name__}: {exc}", "error")
                await self._give_up_lease()
                await self._pause(RETRY_SECONDS)

    async def _stand_by(self) -> bool:
        """Wait for the lease: True once held, False when asked to stop."""
        poll = min(1.0, max(0.1, self.settings.daemon_lease_seconds / 10))
        while not self._stopping.is_set():
            try:
                if await self._lease.acquire({"since": utc_now().isoformat()}):
                    return True
                await self._refresh_view()
            except Exception as exc:  # noqa: BLE001 - NATS away: keep waiting
                self._log.debug("standby: cannot reach the lease", error=str(exc))
            await self._pause(poll)
        return False

    async def _lead(self) -> None:
        started = self._clock()
        self._leading = True
        # renewing from the start: restoring a large state may take longer than a third of the lease
        tasks = [asyncio.create_task(self._keep_lease(), name=f"{self.agent}-lease")]
        try:
            checkpoint, previous = await self._take_over()
            self._restore(checkpoint)
            orphans = await self._store.purge_orphans(keep=checkpoint.chunks)
            self.active, self._stepped_down = True, None
            self._metrics.active(True)
            self._metrics.took_over(self._clock() - started)
            self._log.info(
                "active: took the daemon's state over",
                instance=self._instance,
                fence=self._lease.token,
                revision=self._revision,
                positions=self.applied,
                previous=previous or None,
                pending_effects=len(self._outbox.pending),
                orphan_chunks=orphans or None,
                restored_ms=round((self._clock() - started) * 1000, 1),
            )
            self._merge = merge = Merge(list(self.streams))
            tasks += [
                asyncio.create_task(self._read(stream, filters, merge)) for stream, filters in self.streams.items()
            ]
            await self._outbox.flush(self._lease.ensure, restored=True)
            await self._apply_until_stopped(merge)
        finally:
            await _cancel(tasks)
            if self._merge is not None:
                self._merge.clear()
            self.active = False
            self._metrics.active(False)

    async def _read(self, stream: str, filters: list[str], merge: Merge) -> None:
        """Read `stream` from just after the checkpointed position into `merge`."""
        reader = OrderedReader(
            self._nc,
            stream=stream,
            filters=filters,
            name=self.agent,
            start=self.applied.get(stream, 0) + 1,
            put=lambda msg: merge.put(stream, msg),
            pending=lambda count: merge.pending(stream, count),
            log=self._log,
        )
        await reader.run()

    async def _take_over(self) -> tuple[Checkpoint, str]:
        """Read the checkpoint and write it back as this instance's: from that write on, any
        older active instance's checkpoint write fails. Returns it, and who wrote it before."""
        while True:
            self._lease.ensure()
            checkpoint, revision = await self._store.read()
            if checkpoint is None:
                checkpoint = Checkpoint(state=self.model().model_dump_json().encode())
            elif checkpoint.fence > (self._lease.token or 0):
                raise LeaseLost(f"a newer active instance ({checkpoint.holder}) wrote the checkpoint (fenced)")
            previous = checkpoint.holder
            checkpoint.holder, checkpoint.fence = self._instance, self._lease.token or 0
            try:
                await self._store.write(checkpoint, last=revision, reuse_chunks=True)
            except LeaseLost:
                continue  # an older active instance wrote one more: read that one
            return checkpoint, previous

    def _restore(self, checkpoint: Checkpoint) -> None:
        try:
            state = self.model.model_validate_json(checkpoint.state)
        except ValidationError as exc:
            raise CheckpointUnreadable(
                f"the checkpoint's state does not fit {self.model.__name__} ({exc.error_count()} errors, first: "
                f"{exc.errors()[0]['msg']}); give new fields defaults so that old checkpoints still load"
            ) from None
        self.current = state
        self.applied = dict(checkpoint.positions)
        self._outbox.pending = list(checkpoint.effects)
        self._revision, self._chunks, self._size = checkpoint.revision, checkpoint.chunks, checkpoint.size
        self._saved_state = checkpoint.state
        self._total = checkpoint.applied
        self._unsaved, self._read_since, self._first_unsaved_at = [], 0, None

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self._lease.ttl / 3)
            try:
                await self._lease.renew()
            except LeaseLost:
                return  # the applier finds out before its next step (Lease.ensure)
            except Exception as exc:  # noqa: BLE001 - NATS away: try again; the lease runs out meanwhile
                self._log.warning("could not renew the lease", error=str(exc))

    async def _apply_until_stopped(self, merge: Merge) -> None:
        while True:
            item = None if self._stopping.is_set() else await merge.next(QUIET_SECONDS)
            if self._stopping.is_set():
                await self._finish()
                return
            self._lease.ensure()
            if item is not None:
                self._apply(*item)
            if self._due(quiet=item is None):
                await self._checkpoint()

    def _apply(self, stream: str, msg: Msg) -> None:
        metadata = msg.metadata
        seq = metadata.sequence.stream
        if seq <= self.applied.get(stream, 0):
            return
        self.applied[stream] = seq
        self._read_since += 1
        if self._first_unsaved_at is None:
            self._first_unsaved_at = self._clock()
        applier = next((a for a in self.appliers if a.stream == stream and a.matches(msg.subject)), None)
        if applier is None:
            return
        at = Position(stream, seq, metadata.timestamp)
        try:
            event = applier.model.model_validate_json(msg.data)
        except ValidationError as exc:
            self._metrics.event(stream, "invalid")
            self._log.warning(
                "skipped an event that does not validate", stream=stream, seq=seq, subject=msg.subject, error=str(exc)
            )
            return
        try:
            effects = [_stored(e) for e in applier.apply(self.current, event, at) or []]
        except Exception as exc:  # noqa: BLE001 - a bug in the applier: skip the event, keep the state sound
            self._metrics.event(stream, "failed")
            self._log.error(
                "an applier failed: the event is skipped, the state is as it was before it",
                stream=stream,
                seq=seq,
                subject=msg.subject,
                error=f"{type(exc).__name__}: {exc}",
            )
            self._roll_back()
            return
        self._unsaved.append((applier, event, at))
        self._outbox.pending.extend(effects)
        self._total += 1
        self._metrics.event(stream, "applied")

    def _roll_back(self) -> None:
        """The state as it was before the failed event: the last checkpoint's, with the events
        applied since replayed onto it (appliers are pure: the same events give the same state;
        their effects are pending already)."""
        state = self.model.model_validate_json(self._saved_state)
        for applier, event, at in self._unsaved:
            applier.apply(state, event, at)
        self.current = state

    def _due(self, *, quiet: bool) -> bool:
        if not self._read_since:
            return False
        if self._read_since >= self.checkpoint_every or quiet:
            return True
        waited = self._clock() - (self._first_unsaved_at or self._clock())
        return self.checkpoint_seconds is not None and waited >= self.checkpoint_seconds

    async def _checkpoint(self) -> None:
        state = self.current.model_dump_json().encode()
        checkpoint = Checkpoint(
            state=state,
            positions=dict(self.applied),
            effects=list(self._outbox.pending),
            applied=self._total,
            holder=self._instance,
            fence=self._lease.token or 0,
            chunks=self._chunks,
        )
        self._lease.ensure()
        started = self._clock()
        try:
            await self._store.write(checkpoint, last=self._revision)
        except LeaseLost:
            self._metrics.checkpoint("fenced")
            raise
        except Exception:
            self._metrics.checkpoint("failed")
            raise
        chunks = checkpoint.chunks.count if checkpoint.chunks else 0
        self._metrics.checkpoint("ok", self._clock() - started, checkpoint.size, chunks)
        self._revision, self._chunks, self._size = checkpoint.revision, checkpoint.chunks, checkpoint.size
        self._saved_state, self._checkpointed_at = state, utc_now().isoformat()
        self._unsaved, self._read_since, self._first_unsaved_at = [], 0, None
        await self._outbox.flush(self._lease.ensure)

    async def _finish(self) -> None:
        """A clean stop: save what is applied, publish its effects, hand the lease on at once."""
        try:
            if self._read_since:
                await self._checkpoint()
            else:
                await self._outbox.flush(self._lease.ensure)
        except LeaseLost as lost:
            self._log.warning("stopping without a last checkpoint: the lease is gone", reason=str(lost))
        finally:
            self._step_down("stopping", "stopped")
            await self._give_up_lease()

    async def _refresh_view(self) -> None:
        """A standby's copy of the latest checkpoint's state, for read-only views."""
        if self._clock() < self._next_refresh:
            return
        self._next_refresh = self._clock() + REFRESH_SECONDS
        holder, _ = await self._lease.current()
        self._active_holder = (holder or {}).get("holder")
        try:
            checkpoint, revision = await self._store.read()
            if checkpoint is None or revision == self._revision:
                return
            state = self.model.model_validate_json(checkpoint.state)
        except (CheckpointUnreadable, ValidationError):
            return  # read half-way through a chunked write, or a bad one: the next look will tell
        self.current, self.applied, self._total = state, dict(checkpoint.positions), checkpoint.applied
        self._revision, self._chunks, self._size = revision, checkpoint.chunks, checkpoint.size

    def _step_down(self, reason: str, kind: str) -> None:
        """Stop acting as the active instance; `kind`: lease, error or stopped (for the metric)."""
        was_leading, self._leading = self._leading, False
        self.active = False
        self._metrics.active(False)
        if kind == "stopped" or not was_leading:
            return
        self._stepped_down = {"at": utc_now().isoformat(), "reason": reason}
        self._metrics.stepped_down(kind)
        log = self._log.error if kind == "error" else self._log.warning
        log(
            "stepped down to standby",
            reason=reason,
            instance=self._instance,
            dropped_unsaved_events=self._read_since or None,
        )

    async def _give_up_lease(self) -> None:
        with contextlib.suppress(Exception):
            await self._lease.release()
        self._lease.forget()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()


async def _cancel(tasks: list[asyncio.Task]) -> None:
    """Cancel the tasks and wait for them, cancelling again any that carries on: a cancellation
    can be lost inside `asyncio.wait_for` (Python 3.11, which nats-py's requests use)."""
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)


def _stored(effect: Effect) -> StoredEffect:
    if not isinstance(effect, Effect):
        raise TypeError(f"an applier returned {type(effect).__name__}, not an Effect")
    return StoredEffect(subject=effect.subject, msg_id=effect.msg_id, data=effect.model.model_dump_json())


def attach(agent: Any, model: type[StateT], **options: Any) -> StateHandle[StateT]:
    """The handle for `agent.stateful(model, ...)`: registers its bucket, its hooks and metrics."""
    handle = StateHandle(
        model,
        agent=agent.name,
        settings=agent.settings,
        log=agent.log,
        metrics=DaemonMetrics(agent.name, agent.metrics.registry),
        **options,
    )
    agent.buckets.append(BucketUse(agent.settings.subjects.daemons_bucket, read=True, keys=(f"{agent.name}.>",)))

    async def start() -> None:
        await handle.start(agent.broker.connection, agent.publisher.publish_raw)

    agent.on_start.append(start)
    agent.on_stop.append(handle.stop)
    return handle
