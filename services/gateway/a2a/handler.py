"""The SDK's request handler (`DefaultRequestHandler`) with the gateway's store, event stream
and executor, and answers of our own:

- a message is checked before a task exists: a bad proposal is a JSON-RPC invalid-params error
  naming each bad field, and nothing is published or recorded;
- a message to an existing task is an answer to its input-required state: a person's decision
  on the approval its release waits for (answers.py), taken or refused by the coordinator; a
  refusal is a JSON-RPC invalid-request error with the reason and its HTTP-like `status`. A task
  whose release never waited for a person takes no follow-up: one proposal is one task;
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
from a2a.utils.errors import (
    InvalidRequestError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import apply_history_length

from contracts.approvals import approval_id
from services.gateway.a2a.answers import answer_in
from services.gateway.a2a.executor import CANNOT_CANCEL, ProposalExecutor
from services.gateway.a2a.proposals import proposal_in
from services.gateway.a2a.records import TaskRecords
from services.gateway.a2a.store import BusTaskStore
from services.gateway.a2a.stream import RevisionEvents
from services.gateway.a2a.users import caller_of
from services.gateway.a2a.views import revision_of
from services.gateway.approvals import ApprovalRefused, Approvals
from services.gateway.front import Front

# How long the SDK keeps an input-required task's runner around for a follow-up message, which
# we answer ourselves anyway: long enough for the client's last read, no longer.
PARKED_SECONDS = 30.0

NO_FOLLOW_UP = (
    "this agent takes one proposal per task; a message to an existing task can only answer its wait for a "
    "person (input-required, with a decision), and this task's release never waited for one. Send changed "
    "content as a new message, without a taskId."
)


class GatewayRequestHandler(DefaultRequestHandler):
    """A2A requests answered from the bus (see the module's docstring)."""

    def __init__(
        self,
        *,
        front: Callable[[], Front],
        card: AgentCard,
        max_wait: float,
        approvals: Callable[[], Approvals] | None = None,
    ) -> None:
        records = TaskRecords(front)
        self.tasks = BusTaskStore(records, front)
        self.max_wait = max_wait
        self._approvals = approvals
        super().__init__(
            agent_executor=ProposalExecutor(front),
            task_store=self.tasks,
            agent_card=card,
            event_stream=RevisionEvents(records, front),
            interrupted_task_timeout=PARKED_SECONDS,
        )

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task | Message:
        if params.message.task_id:
            return await self.answer(params, context)
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
        if params.message.task_id:
            yield await self.answer(params, context)
            return
        admit(params)
        async for event in super().on_message_send_stream(params, context):
            yield event

    async def answer(self, params: SendMessageRequest, context: ServerCallContext) -> Task:
        """A message to an existing task: the caller's decision on the approval its release waits for."""
        stored = await self.tasks.get(params.message.task_id, context)
        if stored is None:
            raise TaskNotFoundError
        revision = revision_of(stored.task)
        approvals = self._approvals() if self._approvals else None
        view = (
            await approvals.get(approval_id(revision.release_id, revision.digest)) if approvals and revision else None
        )
        if view is None:
            raise UnsupportedOperationError(message=NO_FOLLOW_UP)
        answer = answer_in(params.message)
        try:
            await approvals.decide(
                view.id, caller=caller_of(context), decision=answer.decision, note=answer.note, via="a2a"
            )
        except ApprovalRefused as exc:
            raise InvalidRequestError(
                message=f"the decision was refused: {exc.detail}", data={"status": exc.status, "detail": exc.detail}
            ) from None
        stored = await self.tasks.get(params.message.task_id, context)
        return apply_history_length(stored.task, params.configuration)

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        stored = await self.tasks.get(params.id, context)
        if stored is not None and stored.task.status.state in INTERRUPTED_TASK_STATES:
            # Waiting for a person: nothing happens to it here until one answers. The SDK would wait for a message.
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
    proposal_in(params.message)
