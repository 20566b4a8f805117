"""The steward answers requests for a service's recent history: `<ns>.steward.history.<service>`.

A core NATS request-reply (a `HistoryRequest`, possibly empty, in; a `HistoryAnswer` out),
served by every replica in one queue group: the history is in the stream, so the standby
answers as well as the active instance. A bad request or an unavailable stream is answered
too (with `error`): a reviewer waiting on it must never wait for a timeout it could be spared.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from bus.errors import MeshError
from contracts.stewardship import HistoryAnswer, HistoryRequest, RiskLevel
from contracts.validation import describe_errors
from services.steward.history import HistoryPage, HistoryQuery

QUEUE = "steward"

Search = Callable[[str, HistoryQuery], Awaitable[HistoryPage]]  # (service token, query) -> page
RiskOf = Callable[[str], RiskLevel | None]  # service token -> its level now, None if never seen


async def serve_history(nc: Client, subject: str, *, search: Search, risk_of: RiskOf, log) -> Subscription:
    """Answer history requests on `subject` (`….steward.history.*`) until unsubscribed."""

    async def answer(msg: Msg) -> None:
        service = msg.subject.rsplit(".", 1)[-1]
        reply = await history_answer(service, msg.data, search=search, risk_of=risk_of)
        if reply.error:
            log.warning("history request refused", service=service, error=reply.error)
        if msg.reply:
            await msg.respond(reply.model_dump_json().encode())

    return await nc.subscribe(subject, queue=QUEUE, cb=answer)


async def history_answer(service: str, data: bytes, *, search: Search, risk_of: RiskOf) -> HistoryAnswer:
    """The answer to one request for `service`'s history (its subject token)."""
    try:
        request = HistoryRequest.model_validate_json(data or b"{}")
    except ValidationError as exc:
        detail = "; ".join(describe_errors(exc.errors()))
        return HistoryAnswer(service=service, error=f"bad history request: {detail}")
    query = HistoryQuery(rule=request.rule, since=request.since, limit=request.limit)
    try:
        page = await search(service, query)
    except MeshError as exc:
        return HistoryAnswer(service=service, risk=risk_of(service), error=str(exc))
    return HistoryAnswer(service=service, records=page.records, risk=risk_of(service), truncated=page.truncated)
