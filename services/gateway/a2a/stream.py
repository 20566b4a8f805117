"""The SDK's cross-replica event stream, backed by the bus: a task's events are its revision's
reviews and outcome (`Front.follow`), told as A2A status and artifact updates.

The SDK asks for this stream when a client subscribes to a task on a replica that is not
running it (another replica's, or one that restarted since). Nothing is published to it: what
a replica's executor sees comes from the bus already, and every replica reads it there.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from a2a.server.cluster import TaskEventStream, TaskVersion, VersionedEvent

from services.gateway.a2a.records import TaskRecords
from services.gateway.a2a.views import DECIDED, events_of
from services.gateway.front import Front


class RevisionEvents(TaskEventStream):
    """Events of a task, read from its revision on the bus."""

    def __init__(self, records: TaskRecords, front: Callable[[], Front]) -> None:
        self.records = records
        self._front = front

    async def publish(self, task_id: str, event: VersionedEvent) -> None:
        """Nothing to do: every event of a task is already on the bus (see the module's docstring)."""

    async def subscribe(self, task_id: str, *, after: TaskVersion) -> AsyncGenerator[VersionedEvent, None]:
        """The task's events, as they happen, ending with the outcome. Those up to `after` are
        told again: the SDK drops them by their version (a round holds a handful of reviews)."""
        record = await self.records.get(task_id)
        if record is None or record.revision is None or not TaskVersion(DECIDED).is_after(after):
            return  # unknown, never published, or decided already: nothing more will happen
        async for flow in self._front().follow(record.revision):
            for event, version in events_of(flow, record.task):
                yield VersionedEvent(event=event, version=TaskVersion(version))

    async def destroy(self, task_id: str) -> None:
        """Nothing to release: a subscription holds no more than its own watcher."""
