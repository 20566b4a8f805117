"""The SDK's request handler (`DefaultRequestHandler`) with the gateway's store, event stream
and executor, and four answers of our own:

- a message is checked before a task exists: a bad proposal is a JSON-RPC invalid-params error
  naming each bad field, and nothing is published or recorded;
- a message to an existing task is refused: one proposal is one task, and an escalated round
  is settled by a person, not by another message;
- CancelTask is refused (TaskNotCancelable): a published round cannot be called back;
- a blocking SendMessage is held at most the gateway's longest wait; then it answers with the
  task as it stands, which the client can poll or subscribe to (no request is held past its
  deadline, the gateway's rule for every way in).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

from a2a.server.agent_execution.active_task import INTERRUPTED_TASK_STATES
from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError, UnsupportedOperationError
from a2a.utils.task import apply_history_length

from services.gateway.a2a.executor import CANNOT_CANCEL, ProposalExecutor
from services.gateway.a2a.proposals import proposal_in
from services.gateway.a2a.records import TaskRecords
from services.gateway.a2a.store import BusTaskStore
from services.gateway.a2a.stream import RevisionEvents
from services.gateway.front import Front

# How long the SDK keeps an escalated (input-required) task's runner around for a follow-up
# message that we refuse anyway: long enough for the client's last read, no longer.
PARKED_SECONDS = 30.0

NO_FOLLOW_UP = (
    "this agent takes one proposal per task, and a task is never continued: an escalated round is "
    "settled by a person, outside A2A. Send changed content as a new message, without a taskId."
)


class GatewayRequestHandler(DefaultRequestHandler):
    """A2A requests answered from the bus (see the module's docstring)."""

    def __init__(self, *, front: Callable[[], Front], card: AgentCard, max_wait: float) -> None:
        records = TaskRecords(front)
        self.tasks = BusTaskStore(records, front)
        self.max_wait = max_wait
        super().__init__(
            agent_executor=ProposalExecutor(front),
            task_store=self.tasks,
            agent_card=card,
            event_stream=RevisionEvents(records, front),
            interrupted_task_timeout=PARKED_SECONDS,
        )

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task | Message:
        admit(params)
        try:
            return await asyncio.wait_for(super().on_message_send(params, context), self.max_wait)
        except TimeoutError:
            # The SDK wrote the new task's id into the request; the round goes on without us.
            stored = await self.tasks.get(params.message.task_id, context) if params.message.task_id else None
            if stored is None:
                raise
            return apply_history_length(stored.task, params.configuration)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        admit(params)
        async for event in super().on_message_send_stream(params, context):
            yield event

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        stored = await self.tasks.get(params.id, context)
        if stored is not None and stored.task.status.state in INTERRUPTED_TASK_STATES:
            # Escalated: nothing more will happen to it here. The SDK would wait for a message.
            yield stored.task
            return
        async for event in super().on_subscribe_to_task(params, context):
            yield event

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task | None:
        if await self.tasks.get(params.id, context) is None:
            raise TaskNotFoundError
        raise TaskNotCancelableError(message=CANNOT_CANCEL)


def admit(params: SendMessageRequest) -> None:
    """Refuse, before a task exists, a message this agent cannot take (see the module's docstring)."""
    if params.message.task_id:
        raise UnsupportedOperationError(message=NO_FOLLOW_UP)
    proposal_in(params.message)
