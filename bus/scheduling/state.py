"""A schedule's records in the schedules KV bucket (`<ns>_schedules`), one key per fact:

    ticks.<agent>.<schedule>.<tick>   what became of each tick (TickRecord), kept a week (per-key TTL)
    last.<agent>.<schedule>           the last handled tick and its result (ScheduleResult)
    coalesced.<agent>.<schedule>      ticks skipped for a newer one, not yet counted by it
    paused.<agent>.<schedule>         set while paused: the definition to put back (SchedulePaused)

An agent writes only its own `ticks`, `last` and `coalesced` keys; the operator (`mesh schedule
pause | resume`, `mesh provision`) writes `paused` and cleans up after removed schedules.
"""

from __future__ import annotations

import json
from typing import TypeVar

from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from contracts.schedules import SchedulePaused, ScheduleResult, TickRecord
from contracts.subjects import subject_token

ModelT = TypeVar("ModelT", bound=BaseModel)
TICK_RECORD_TTL = 7 * 24 * 3600.0  # as long as the stream keeps a fired tick
_CAS_TRIES = 8


def agent_keys(agent: str) -> tuple[str, ...]:
    """The keys an agent may write (subject patterns below `$KV.<bucket>.`)."""
    return (f"ticks.{agent}.>", f"last.{agent}.>", f"coalesced.{agent}.>")


class ScheduleStore:
    """The records of one schedule (`agent.schedule`) in the schedules bucket."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, bucket: str, agent: str, schedule: str) -> None:
        self.js, self.kv, self.bucket = js, kv, bucket
        self.agent, self.schedule = agent, schedule
        self.last_key = f"last.{agent}.{schedule}"
        self.coalesced_key = f"coalesced.{agent}.{schedule}"
        self.paused_key = f"paused.{agent}.{schedule}"

    def tick_key(self, tick_id: str) -> str:
        return f"ticks.{self.agent}.{self.schedule}.{subject_token(tick_id)}"

    # --- ticks --------------------------------------------------------------------------

    async def tick(self, tick_id: str) -> TickRecord | None:
        return (await read(self.kv, self.tick_key(tick_id), TickRecord))[0]

    async def claim_tick(self, record: TickRecord) -> bool:
        """Store `record` unless this tick has one already (then False)."""
        try:
            await self.kv.create(
                self.tick_key(record.tick_id), record.model_dump_json().encode(), msg_ttl=TICK_RECORD_TTL
            )
        except BadRequestError:  # KeyWrongLastSequenceError: someone recorded it first
            return False
        return True

    async def set_tick(self, record: TickRecord) -> None:
        """Store `record` whatever was there (with the week's TTL, which `kv.put` cannot set)."""
        key = self.tick_key(record.tick_id)
        await self.js.publish(f"$KV.{self.bucket}.{key}", record.model_dump_json().encode(), msg_ttl=TICK_RECORD_TTL)

    # --- coalescing ---------------------------------------------------------------------

    async def add_coalesced(self) -> None:
        """One more tick skipped for a newer one."""
        await self._cas(self.coalesced_key, lambda count: count + 1)

    async def take_coalesced(self) -> int:
        """How many ticks were skipped since the last claim; resets the count."""
        taken = 0

        def reset(count: int) -> int | None:
            nonlocal taken
            taken = count
            return 0 if count else None  # nothing to take: write nothing

        await self._cas(self.coalesced_key, reset)
        return taken

    async def _cas(self, key: str, change) -> None:
        for _ in range(_CAS_TRIES):
            raw, revision = await read_raw(self.kv, key)
            count = int(json.loads(raw).get("count", 0)) if raw else 0
            new = change(count)
            if new is None:
                return
            body = json.dumps({"count": new}).encode()
            try:
                if revision:
                    await self.kv.update(key, body, last=revision)
                else:
                    await self.kv.create(key, body)
                return
            except BadRequestError:
                continue  # another replica wrote in between: read again
        raise RuntimeError(f"{key}: gave up after {_CAS_TRIES} compare-and-set conflicts")

    # --- results and pauses -------------------------------------------------------------

    async def last(self) -> ScheduleResult | None:
        return (await read(self.kv, self.last_key, ScheduleResult))[0]

    async def record_last(self, result: ScheduleResult) -> bool:
        """Make `result` the schedule's last, unless a tick fired later is recorded already."""
        for _ in range(_CAS_TRIES):
            current, revision = await read(self.kv, self.last_key, ScheduleResult)
            if current is not None and current.fired_at > result.fired_at:
                return False
            body = result.model_dump_json().encode()
            try:
                if revision:
                    await self.kv.update(self.last_key, body, last=revision)
                else:
                    await self.kv.create(self.last_key, body)
                return True
            except BadRequestError:
                continue
        return False

    async def paused(self) -> SchedulePaused | None:
        return (await read(self.kv, self.paused_key, SchedulePaused))[0]


async def keys_under(kv: KeyValue, pattern: str) -> list[str]:
    """The keys matching `pattern` (`paused.>`), read by a watch of that pattern only (nats-py's
    `keys(filters=...)` watches the whole bucket and matches substrings)."""
    watcher = await kv.watch(pattern, ignore_deletes=True, meta_only=True)
    keys: list[str] = []
    try:
        async for entry in watcher:
            if entry is None:  # the end of what is stored now
                break
            keys.append(entry.key)
    finally:
        await watcher.stop()
    return keys


async def read_raw(kv: KeyValue, key: str) -> tuple[bytes | None, int]:
    """(value, revision) of `key`; (None, revision) when deleted or expired, (None, 0) when never set.

    A revision is returned for a deleted key too, so a compare-and-set can follow it."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError as exc:
        entry = getattr(exc, "entry", None)
        return None, (entry.revision if entry is not None else 0) or 0
    return (entry.value or None), entry.revision or 0


async def read(kv: KeyValue, key: str, model: type[ModelT]) -> tuple[ModelT | None, int]:
    raw, revision = await read_raw(kv, key)
    return (model.model_validate_json(raw) if raw else None), revision
