"""Effects on their way out: published in order, only after the checkpoint that holds them, and
never twice — not even for a core NATS subscriber, who sees every publish, duplicates included.

An effect is kept in the checkpoint until a later checkpoint no longer lists it, so an instance
that restores a checkpoint may find effects its predecessor did publish before it died. Before
publishing those it asks the stream: effects go out one at a time, in order, so what was published
is a prefix of the list, and the last message stored on each effect's subject tells how long that
prefix is (its `Nats-Msg-Id`). That holds as long as only this daemon publishes on those subjects,
which its identity's permissions make sure of when it declares them (`agent.publishes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bus.errors import LeaseLost
from bus.stateful.checkpoint import StoredEffect

RETRY_SECONDS = 0.5

Publish = Callable[[bytes, str, dict], Awaitable[Any]]


class Outbox:
    def __init__(
        self,
        *,
        js: JetStreamContext,
        publish: Publish,
        stream_for: Callable[[str], str],
        log: Any,
        counted: Callable[[str, int], None] = lambda result, n: None,
    ) -> None:
        self._js = js
        self._publish = publish
        self._stream_for = stream_for
        self._log = log
        self._counted = counted
        self.pending: list[StoredEffect] = []

    async def published_prefix(self, effects: Sequence[StoredEffect]) -> int:
        """How many of `effects`, from the first, the streams already hold."""
        last_ids: dict[str, str | None] = {}
        for subject in dict.fromkeys(e.subject for e in effects):
            try:
                msg = await self._js.get_msg(self._stream_for(subject), subject=subject)
                last_ids[subject] = (msg.headers or {}).get("Nats-Msg-Id")
            except NotFoundError:
                last_ids[subject] = None
        done = 0
        for n, effect in enumerate(effects):
            if last_ids.get(effect.subject) == effect.msg_id:
                done = n + 1
        return done

    async def flush(self, ensure: Callable[[], None], *, restored: bool = False) -> None:
        """Publish every pending effect, in order. `ensure()` runs before each publish and raises
        LeaseLost once this instance may no longer act; `restored`: the effects come from a
        checkpoint another process wrote, and may have gone out already."""
        if restored and self.pending:
            await self._drop_published()
        while self.pending:
            ensure()
            effect = self.pending[0]
            headers = {"Nats-Msg-Id": effect.msg_id, "content-type": "application/json"}
            try:
                await self._publish(effect.data.encode(), effect.subject, headers)
            except LeaseLost:
                raise
            except Exception as exc:  # noqa: BLE001 - a lost PubAck may still have been stored
                self._log.warning("publishing an effect failed; checking the stream, then retrying", error=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                ensure()
                await self._drop_published()
                continue
            self.pending.pop(0)
            self._counted("published", 1)

    async def _drop_published(self) -> None:
        done = await self.published_prefix(self.pending)
        if done:
            del self.pending[:done]
            self._counted("already_published", done)
