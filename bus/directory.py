"""A live, in-memory view of which agents exist and which of their instances are alive.

The view is *derived*: the truth is in the cards and instances KV buckets, and the view keeps
up by watching them (no scan per request). A process that restarts rebuilds it from KV.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nats.aio.client import Client
from nats.js.kv import KeyValue
from pydantic import ValidationError

from bus.settings import BusSettings
from contracts.cards import AgentCard, AgentInstance
from contracts.envelope import utc_now

_DELETED = ("DEL", "PURGE")


@dataclass
class AgentView:
    card: AgentCard
    instances: list[AgentInstance] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def live(self) -> bool:
        return bool(self.instances)

    @property
    def last_heartbeat(self) -> datetime | None:
        return max((i.heartbeat_at for i in self.instances), default=None)

    def matches(self, *, skill: str | None, tag: str | None, q: str | None) -> bool:
        skills = self.card.skills
        if skill and not any(s.id == skill for s in skills):
            return False
        if tag and not any(tag in s.tags for s in skills):
            return False
        if q:
            needle = q.casefold()
            haystack = " ".join(
                [self.card.name, self.card.description]
                + [f"{s.id} {s.name} {s.description} {' '.join(s.tags)}" for s in skills]
            ).casefold()
            return needle in haystack
        return True


class AgentDirectory:
    """`await AgentDirectory.watch(nc, settings)`, then query it; `await close()` at the end."""

    def __init__(self, settings: BusSettings, nc: Client | None = None) -> None:
        self._settings = settings
        self._nc = nc
        self.cards: dict[str, AgentCard] = {}
        self.instances: dict[str, dict[str, AgentInstance]] = {}
        self._tasks: list[asyncio.Task] = []
        self._watchers: list = []
        self.ready = asyncio.Event()

    @classmethod
    async def watch(cls, nc: Client, settings: BusSettings) -> AgentDirectory:
        directory = cls(settings, nc)
        js = nc.jetstream()
        s = settings.subjects
        loaded = [asyncio.Event(), asyncio.Event()]
        for bucket, apply, done in (
            (s.agents_bucket, directory._apply_card, loaded[0]),
            (s.instances_bucket, directory._apply_instance, loaded[1]),
        ):
            kv = await js.key_value(bucket)
            directory._tasks.append(asyncio.create_task(directory._follow(kv, apply, done)))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in loaded)), timeout=10)
        directory.ready.set()
        return directory

    async def _follow(self, kv: KeyValue, apply, loaded: asyncio.Event) -> None:
        watcher = await kv.watchall()
        self._watchers.append(watcher)
        # Iterate, don't poll with updates(timeout=): on Python 3.11 a cancel that races the
        # timeout inside asyncio.wait_for can be swallowed, and the task would never end.
        async for entry in watcher:  # ends when watcher.stop() is called
            if entry is None:  # end of the initial values (sent at once for an empty bucket)
                loaded.set()
                continue
            apply(entry.key, entry.operation, entry.value)

    def _apply_card(self, key: str, operation: str | None, value: bytes | None) -> None:
        if operation in _DELETED or not value:
            self.cards.pop(key, None)
            return
        with contextlib.suppress(ValidationError, ValueError):
            self.cards[key] = AgentCard.model_validate_json(value)

    def _apply_instance(self, key: str, operation: str | None, value: bytes | None) -> None:
        agent, _, instance_id = key.partition(".")
        if operation in _DELETED or not value:
            self.instances.get(agent, {}).pop(instance_id, None)
            return
        with contextlib.suppress(ValidationError, ValueError):
            self.instances.setdefault(agent, {})[instance_id] = AgentInstance.model_validate_json(value)

    # --- queries ------------------------------------------------------------------------

    def live_instances(self, name: str) -> list[AgentInstance]:
        # The server's TTL removes silent instances; this cut-off covers a missed marker.
        cutoff = utc_now() - timedelta(seconds=self._settings.heartbeat_ttl_seconds)
        return sorted(
            (i for i in self.instances.get(name, {}).values() if i.heartbeat_at >= cutoff),
            key=lambda i: i.instance_id,
        )

    def get(self, name: str) -> AgentView | None:
        card = self.cards.get(name)
        return AgentView(card, self.live_instances(name)) if card else None

    def agents(
        self, *, skill: str | None = None, tag: str | None = None, q: str | None = None, include_stale: bool = False
    ) -> list[AgentView]:
        views = (self.get(name) for name in sorted(self.cards))
        return [v for v in views if v and (include_stale or v.live) and v.matches(skill=skill, tag=tag, q=q)]

    @property
    def synced(self) -> bool:
        """Whether this view can be trusted: loaded, and connected now.

        While the connection is away (or being replaced) the view may be stale or empty: callers
        treat it as *unknown*, never as "no agents".
        """
        connected = self._nc is None or (self._nc.is_connected and not self._nc.is_reconnecting)
        return self.ready.is_set() and connected

    def reviewers_for(self, event_type: str) -> list[str]:
        """Live agents with a skill tagged `review` and `event_type`, by name."""
        return [v.name for v in self.agents() if v.card.has_skill_for(event_type)]

    def providers_of(self, skill_id: str) -> list[str]:
        """Every agent whose card offers the skill `skill_id`, live or not, by name."""
        return sorted(name for name, card in self.cards.items() if any(s.id == skill_id for s in card.skills))

    async def close(self) -> None:
        for watcher in self._watchers:
            with contextlib.suppress(Exception):
                await watcher.stop()  # ends each _follow loop
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
