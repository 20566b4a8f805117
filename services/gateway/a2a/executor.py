"""The agent behind the A2A front door: publish the proposal a message carries, for its caller,
and tell its round as it goes, to the outcome. The SDK runs one of these per new task, on the
replica that took the message; what it tells is read from the bus, so any other replica tells
the same (store.py, stream.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.utils.errors import InvalidParamsError, TaskNotCancelableError

from services.gateway.a2a.proposals import proposal_in
from services.gateway.a2a.users import caller_of
from services.gateway.a2a.views import events_of, new_task
from services.gateway.front import Front, IdempotencyConflict

CANNOT_CANCEL = (
    "A review round cannot be cancelled once its proposal is published: the reviewers and the "
    "coordinator have it, and it ends with its outcome. Propose changed content as a new message instead."
)


class ProposalExecutor(AgentExecutor):
    """Publishes the message's proposal and follows its revision to the outcome."""

    def __init__(self, front: Callable[[], Front], *, clock: Callable[[], float] = time.time) -> None:
        self._front = front
        self._clock = clock

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        front = self._front()
        message = context.message
        proposal = proposal_in(message)  # checked before the task existed (handler.py); cannot fail here
        try:
            # The message id is the client's idempotency key: a message sent again publishes nothing new.
            accepted = await front.submit(
                proposal, caller=caller_of(context.call_context), idempotency_key=message.message_id
            )
        except IdempotencyConflict as exc:
            raise InvalidParamsError(message=f"{exc}; send new content with a new messageId") from None
        task = new_task(
            task_id=context.task_id,
            context_id=context.context_id,
            message=message,
            revision=accepted.revision,
            at=datetime.fromtimestamp(self._clock(), UTC),
        )
        await event_queue.enqueue_event(task)
        # From the start, even when the round is further on (or decided, for content proposed
        # before): the task tells each review of its round, then the outcome, and ends.
        async for flow in front.follow(accepted.revision):
            for event, _ in events_of(flow, task):
                await event_queue.enqueue_event(event)
            if flow.kind == "approval":
                return  # input-required: a person answers it (handler.py); the task is read from the bus then

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise TaskNotCancelableError(message=CANNOT_CANCEL)
