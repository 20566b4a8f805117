"""The SDK's task store, backed by the bus: a task's record from the gateway's KV bucket, its
state derived from its revision (views.py) on every read. Any replica reads the same task; a
restarted gateway has lost nothing.

Writes never conflict, so `save` checks no version: the record is written once, when the task
is created, and nothing after that is state of ours to write — the reviews and the outcome that
move a task on are already on the bus, published by the reviewers and the coordinator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from a2a.server.cluster import StoredTask, TaskVersion, VersionedTaskStore
from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.tasks import InMemoryTaskStore
from a2a.types.a2a_pb2 import ListTasksRequest, ListTasksResponse, Task

from services.gateway.a2a.records import TaskRecord, TaskRecords
from services.gateway.a2a.views import derive
from services.gateway.front import Front


def owner_of(context: ServerCallContext) -> str:
    """Whose tasks a request sees: its caller's (tasks are not shared between callers)."""
    return context.user.user_name


class BusTaskStore(VersionedTaskStore):
    """Task records in KV, task states from the revisions on the bus."""

    def __init__(self, records: TaskRecords, front: Callable[[], Front]) -> None:
        self.records = records
        self._front = front

    async def save(
        self,
        task: Task,
        *,
        event: Event | None,
        prev: Task | None,
        prev_version: TaskVersion,
        context: ServerCallContext,
    ) -> TaskVersion:
        # Only the task as first saved (as created, with its revision) is kept: later saves are
        # its state, which is the revision's (see the module's docstring).
        if prev is None:
            await self.records.create(task, owner=owner_of(context))
        return TaskVersion.MISSING  # "not tracked": what orders a task's states is its revision

    async def get(self, task_id: str, context: ServerCallContext) -> StoredTask | None:
        record = await self.records.get(task_id)
        if record is None or record.owner != owner_of(context):
            return None  # someone else's task is as good as none (the SDK's stores do the same)
        task, version = await self.current(record)
        return StoredTask(task, TaskVersion(version))

    async def current(self, record: TaskRecord) -> tuple[Task, int]:
        """The task of `record` as its revision stands now, and its version."""
        if record.revision is None:
            return derive(record.task, None)
        return derive(record.task, await self._front().status(record.revision))

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        owner = owner_of(context)
        ids = await self.records.ids_of(owner)
        records = [r for r in await asyncio.gather(*(self.records.get(i) for i in ids)) if r and r.owner == owner]
        tasks = await asyncio.gather(*(self.current(r) for r in records))
        # The SDK's own filtering, ordering and paging (its in-memory store, filled with the
        # caller's tasks as they stand now), so ListTasks answers exactly as the SDK's stores do.
        scratch = InMemoryTaskStore(owner_resolver=owner_of)
        for task, _ in tasks:
            await scratch.save(task, context)
        return await scratch.list(params, context)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        record = await self.records.get(task_id)
        if record is not None and record.owner == owner_of(context):
            await self.records.delete(task_id, owner=record.owner)
