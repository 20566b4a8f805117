"""A2A task records in the gateway's KV bucket: what a task is besides its state.

    task.<task id>                   {"task": <the Task as first saved>, "owner": <caller id>,
                                      "revision": {"release_id", "revision"} | null}
    task-owner.<caller hash>.<id>    "" — an index, so ListTasks reads only the caller's tasks

A record is written once, when the task is created, and lives as long as the gateway remembers
its revision (`front.ACCEPTED_SECONDS`, a per-key TTL). Its state is not in it: that is the
revision's, read from the bus whenever the task is read (views.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from a2a.types.a2a_pb2 import Task
from google.protobuf.json_format import MessageToDict, ParseDict
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from services.gateway.a2a.views import revision_of
from services.gateway.front import ACCEPTED_SECONDS, Front, Revision

# What a task id may be to name a key (the SDK makes UUIDs; anything else is nobody's task).
TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class TaskRecord:
    """A task as created, who created it, and the revision it follows (None when it never
    reached the bus, e.g. a task that failed before publishing)."""

    task: Task
    owner: str
    revision: Revision | None

    def to_json(self) -> bytes:
        revision = self.revision.as_dict() if self.revision else None
        return json.dumps({"task": MessageToDict(self.task), "owner": self.owner, "revision": revision}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TaskRecord:
        data = json.loads(raw)
        revision = data.get("revision")
        return cls(
            task=ParseDict(data["task"], Task(), ignore_unknown_fields=True),
            owner=data["owner"],
            revision=Revision(revision["release_id"], revision["revision"]) if revision else None,
        )


def owner_token(owner: str) -> str:
    """A KV key token for a caller id."""
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


class TaskRecords:
    """Reading and writing task records, through the Front's view of the gateway bucket."""

    def __init__(self, front: Callable[[], Front]) -> None:
        self._front = front

    async def create(self, task: Task, *, owner: str) -> None:
        """Record `task` for `owner`, unless it is recorded already (a record is written once)."""
        kv = await self._front().gateway_kv()
        record = TaskRecord(task=task, owner=owner, revision=revision_of(task))
        for key, value in [(f"task.{task.id}", record.to_json()), (f"task-owner.{owner_token(owner)}.{task.id}", b"")]:
            try:
                await kv.create(key, value, msg_ttl=ACCEPTED_SECONDS)
            except KeyWrongLastSequenceError:
                pass  # recorded before: its state lives on the bus, nothing to add

    async def get(self, task_id: str) -> TaskRecord | None:
        if not TASK_ID.match(task_id):
            return None
        kv = await self._front().gateway_kv()
        try:
            entry = await kv.get(f"task.{task_id}")
        except KeyNotFoundError:
            return None
        return TaskRecord.from_json(entry.value) if entry.value else None

    async def ids_of(self, owner: str) -> list[str]:
        """The ids of every task `owner` created that is still remembered."""
        kv = await self._front().gateway_kv()
        watcher = await kv.watch(f"task-owner.{owner_token(owner)}.*", meta_only=True, ignore_deletes=True)
        ids = []
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored now
                    break
                ids.append(entry.key.rsplit(".", 1)[1])
        finally:
            await watcher.stop()
        return ids

    async def delete(self, task_id: str, *, owner: str) -> None:
        if not TASK_ID.match(task_id):
            return
        kv = await self._front().gateway_kv()
        for key in (f"task.{task_id}", f"task-owner.{owner_token(owner)}.{task_id}"):
            await kv.purge(key)
