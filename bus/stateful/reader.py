"""Reading one stream in order from a chosen sequence: what a daemon replays and then follows.

No durable consumer: a shared durable keeps its own position (its acks), which could disagree
with the positions in the daemon's checkpoint. Instead the reader creates a short-lived push
consumer that starts right after the checkpointed position — ephemeral, in memory, no acks,
flow-controlled, with idle heartbeats — and hands on each message it delivers, in stream order.

The consumer's own sequence numbers every delivery 1, 2, 3…: a gap (a message lost on the way),
a heartbeat that names a later delivery than the last one seen, or silence past three heartbeats
(the server restarted and forgot it) means the reader abandons it and makes a new one, starting
after the last message it handed on. Abandoned consumers vanish on their own once nobody listens
(`inactive_threshold`), so the identity needs no right to delete consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

INACTIVE_SECONDS = 10.0  # an abandoned consumer is gone this long after its inbox went quiet
RETRY_SECONDS = 1.0  # after the server refused a consumer, or did not answer


class OrderedReader:
    def __init__(
        self,
        nc: Client,
        *,
        stream: str,
        filters: list[str],
        name: str,
        start: int,
        put: Callable[[Msg], Awaitable[None]],
        log: Any,
        pending: Callable[[int], None] = lambda count: None,
        heartbeat: float = 1.0,
    ) -> None:
        """Hand on to `put` every message of `stream` on `filters` from sequence `start` on;
        tell `pending` how many are stored and not delivered yet, when the server says so (each
        message says it too: `msg.metadata.num_pending`)."""
        self._nc = nc
        self._js = nc.jetstream()
        self.stream = stream
        self._filters = filters
        self._name = name
        self.next_seq = start
        self._put = put
        self._pending = pending
        self._log = log
        self._heartbeat = heartbeat
        self.restarts = 0

    async def run(self) -> None:
        """Read until cancelled, replacing the consumer whenever it cannot be trusted."""
        await self._warn_if_trimmed()
        while True:
            inbox: asyncio.Queue[Msg] = asyncio.Queue()  # bounded by flow control

            async def arrived(msg: Msg, inbox: asyncio.Queue = inbox) -> None:
                inbox.put_nowait(msg)

            sub = await self._nc.subscribe(self._nc.new_inbox(), cb=arrived)
            try:
                info = await self._js.add_consumer(self.stream, self._config(sub.subject))
                self._pending(info.num_pending or 0)
                reason = await self._follow(inbox)
            except Exception as exc:  # noqa: BLE001 - NATS away or refusing: try again shortly
                reason = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            self.restarts += 1
            self._log.info("replay consumer replaced", stream=self.stream, reason=reason, from_seq=self.next_seq)

    def _config(self, inbox: str) -> ConsumerConfig:
        one = len(self._filters) == 1
        return ConsumerConfig(
            name=f"{self._name}-{uuid.uuid4().hex[:12]}",
            deliver_subject=inbox,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.next_seq,
            ack_policy=AckPolicy.NONE,
            max_deliver=1,
            flow_control=True,
            idle_heartbeat=self._heartbeat,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=INACTIVE_SECONDS,
            filter_subject=self._filters[0] if one else None,
            filter_subjects=None if one else list(self._filters),
        )

    async def _follow(self, inbox: asyncio.Queue[Msg]) -> str:
        """Hand on messages until this consumer cannot be trusted; say why."""
        delivered = 0  # the consumer sequence of the last message seen
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives with a message, and this reader would never stop
            try:
                async with asyncio.timeout(self._heartbeat * 3):
                    msg = await inbox.get()
            except TimeoutError:
                return "no heartbeat for three intervals"
            headers = msg.headers or {}
            status = headers.get("Status")
            if status == "100":  # an idle heartbeat or a flow control request
                if msg.reply:  # flow control: everything before it has been read
                    await self._nc.publish(msg.reply)
                if stalled := headers.get("Nats-Consumer-Stalled"):
                    await self._nc.publish(stalled)
                elif not msg.reply:  # an idle heartbeat: nothing is waiting to be delivered
                    self._pending(0)
                last = headers.get("Nats-Last-Consumer")
                if last is not None and int(last) != delivered:
                    return f"heartbeat says delivery {last}, last seen {delivered}"
                continue
            if status:
                return f"status {status} {headers.get('Description', '')}".strip()
            sequence = msg.metadata.sequence
            if sequence.consumer != delivered + 1:
                return f"delivery {sequence.consumer} after {delivered}"
            delivered = sequence.consumer
            if sequence.stream < self.next_seq:  # handed on before this consumer was made
                continue
            await self._put(msg)
            self.next_seq = sequence.stream + 1

    async def _warn_if_trimmed(self) -> None:
        with contextlib.suppress(Exception):
            state = (await self._js.stream_info(self.stream)).state
            if state.first_seq > self.next_seq and state.messages:
                self._log.warning(
                    "events this daemon never applied are no longer in the stream (its limits removed them)",
                    stream=self.stream,
                    wanted_from=self.next_seq,
                    first_kept=state.first_seq,
                )
