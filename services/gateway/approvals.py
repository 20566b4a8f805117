"""Approvals at the gateway: what its routes, its page and its A2A front door share.

    approvals = app.state.approvals
    pending = await approvals.list("pending")
    view = await approvals.get("rel-42.3812ed07d3c8")
    result = await approvals.decide(view.id, caller=caller, decision="approve", note="…")

A decision is published for the caller (`decider` is the caller's id) on the gateway's channel,
and answered by the coordinator, which alone takes or refuses it: the gateway waits for that
verdict up to `MESH_GATEWAY_APPROVAL_WAIT_SECONDS`. A refused decision raises `ApprovalRefused`
with the coordinator's status (403 not an approver, 404 nothing to decide, 409 a second decision,
after the outcome or the deadline) and reason; no verdict in time is a result with `pending`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bus.approvals import ApprovalsClient
from contracts.approvals import MAX_NOTE_CHARS, ApprovalState, ApprovalView
from services.gateway.callers import Caller
from services.gateway.front import Front, Revision

READ_APPROVALS = "approvals:read"
DECIDE_APPROVALS = "approvals:decide"
STATES = tuple(state.value for state in ApprovalState)


class ApprovalRefused(Exception):
    """A decision the mesh will not take: an HTTP status and a sentence saying why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class DecisionResult:
    """What became of a decision: the approval after it, whether it was taken, and why.

    `pending`: the coordinator did not answer in time; the decision is on the bus and will be
    taken or refused when it does (`accepted` is then False)."""

    approval: ApprovalView
    accepted: bool
    detail: str
    pending: bool = False
    status: int = 200
    decision_id: str = ""


def links(view: ApprovalView) -> dict[str, str]:
    """Where to read, decide and see an approval (relative URLs)."""
    base = f"/v1/approvals/{view.id}"
    return {
        "self": base,
        "decision": f"{base}/decision",
        "page": f"/approvals/{view.id}",
        "revision": Revision(view.release_id, view.revision).path,
    }


class Approvals:
    """Reading and deciding approvals for the gateway's callers."""

    def __init__(self, front: Front | Callable[[], Front], *, wait_seconds: float | None = None) -> None:
        self._front = front if callable(front) else (lambda: front)
        self._wait = wait_seconds
        self._client: ApprovalsClient | None = None

    @property
    def client(self) -> ApprovalsClient:
        if self._client is None:
            front = self._front()
            self._client = ApprovalsClient(
                front.client.nc, front.settings, telemetry=front.client.telemetry, name="gateway"
            )
        return self._client

    async def list(self, state: str | None = "pending") -> list[ApprovalView]:
        """Approvals in `state` (None: all), the oldest request first."""
        if state is not None and state not in STATES:
            raise ApprovalRefused(400, f"state {state!r} is not one of {', '.join(STATES)}")
        return await self.client.list(state)

    async def get(self, approval_id: str) -> ApprovalView | None:
        return await self.client.get(approval_id)

    async def decide(
        self,
        approval_id: str,
        *,
        caller: Caller,
        decision: Literal["approve", "reject"],
        note: str,
        via: str = "http",
    ) -> DecisionResult:
        """Decide for `caller`; raises ApprovalRefused unless the coordinator took it (or has not answered)."""
        if decision not in ("approve", "reject"):
            raise ApprovalRefused(422, f"decision {decision!r} is neither approve nor reject")
        if len(note) > MAX_NOTE_CHARS:
            raise ApprovalRefused(422, f"the note is {len(note)} characters; at most {MAX_NOTE_CHARS} are kept")
        if not caller.allows(DECIDE_APPROVALS):
            raise ApprovalRefused(403, f"{caller.id} lacks the scope {DECIDE_APPROVALS!r}")
        view = await self.get(approval_id)
        if view is None:
            raise ApprovalRefused(404, f"no approval {approval_id!r} is known")
        wait = self._wait if self._wait is not None else self._front().settings.gateway_approval_wait_seconds
        event, verdict = await self.client.decide(
            view, decision=decision, note=note, decider=caller.id, channel="gateway", via=via, timeout=wait
        )
        if verdict is None:
            return DecisionResult(
                approval=await self.get(approval_id) or view,
                accepted=False,
                pending=True,
                status=202,
                detail=f"the decision is on the bus, but the coordinator did not answer within {wait:g} s; "
                f"it is taken or refused when it does: see /v1/approvals/{approval_id}",
                decision_id=event.event_id,
            )
        if not verdict.accepted:
            raise ApprovalRefused(verdict.status, verdict.detail)
        return DecisionResult(
            approval=await self.get(approval_id) or view,
            accepted=True,
            status=verdict.status,
            detail=verdict.detail,
            decision_id=event.event_id,
        )
