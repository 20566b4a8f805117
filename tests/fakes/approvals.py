"""An in-memory approvals core with the interface the approval page reads from
`app.state.approvals` (list, get, decide), for the page's tests: the contract's ApprovalView
(contracts/approvals.py) held in a dict, a decision refused as the real core refuses one (not an
approver, twice, after the outcome)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import FastAPI

from contracts.approvals import ApprovalFinding, ApprovalState, ApprovalView, RefusedDecision
from contracts.outcomes import HumanDecision, Outcome, RoundDecided
from services.gateway.approvals import ApprovalRefused, DecisionResult
from services.gateway.callers import Caller
from services.gateway.door import Door
from services.gateway.page import approval_page
from services.gateway.settings import GatewaySettings


def pending_approval(approval_id: str = "rel-42.3812ed07d3c8", **changes) -> ApprovalView:
    """A release the reviewers could not decide alone: a finding per severity, two files."""
    now = datetime.now(UTC)
    view = ApprovalView(
        id=approval_id,
        release_id="rel-42",
        revision="3812ed07d3c8042d4676e44249798c26e7f850fbb3e62aa9325b5082d542347a",
        service="payments-api",
        version="2.4.0",
        title="Add refund endpoint",
        labels=["backend", "pci"],
        state=ApprovalState.PENDING,
        reason="security asked for a person: a credential-like string may be a test fixture.",
        requested_at=now - timedelta(minutes=20),
        deadline=now + timedelta(hours=23, minutes=40),
        approvers=["key:alice", "key:bob"],
        findings=[
            ApprovalFinding(
                reviewer="security",
                rule="SEC004",
                severity="high",
                path="src/refunds.py",
                line=88,
                message="Refund amount is not bounded by the charge.",
            ),
            ApprovalFinding(
                reviewer="security",
                rule="SEC001",
                severity="critical",
                path="src/config.py",
                line=12,
                message="Hard-coded credential: STRIPE_KEY.",
            ),
            ApprovalFinding(
                reviewer="compliance",
                rule="CMP010",
                severity="medium",
                path="src/refunds.py",
                line=31,
                message="Refunds are not written to the ledger.",
            ),
            ApprovalFinding(reviewer="compliance", rule="CMP002", severity="info", message="No changelog entry."),
        ],
        rationales={
            "security": "A live-looking key is committed, but it may be a test fixture: a person should look.",
            "compliance": "Refunds must be audited; the ledger call is missing, which may be intended for now.",
        },
        verdicts={"security": "needs_human", "compliance": "approve"},
    )
    return view.model_copy(update=changes)


class FakeApprovals:
    """Approvals by id; `decisions` records every call to decide, refused ones too."""

    def __init__(self, *approvals: ApprovalView, silent: bool = False) -> None:
        self.approvals = {approval.id: approval for approval in approvals}
        self.silent = silent  # the coordinator never answers: every decision stays `pending`
        self.calls: list[tuple[str, str, str, str]] = []  # (approval id, caller id, decision, note)

    async def list(self, state: str | None = "pending") -> list[ApprovalView]:
        return [a for a in self.approvals.values() if state is None or a.state == state]

    async def get(self, approval_id: str) -> ApprovalView | None:
        return self.approvals.get(approval_id)

    async def decide(
        self, approval_id: str, *, caller: Caller, decision: Literal["approve", "reject"], note: str, via: str = "http"
    ) -> DecisionResult:
        self.calls.append((approval_id, caller.id, decision, note))
        approval = self.approvals.get(approval_id)
        if approval is None:
            raise ApprovalRefused(404, f"no approval {approval_id!r}")
        if self.silent:
            return DecisionResult(approval, accepted=False, pending=True, status=202, detail="no verdict in time")
        refusal = self._refusal(approval, caller)
        if refusal is not None:
            status, reason = refusal
            refused = RefusedDecision(who=caller.id, when=datetime.now(UTC), decision=decision, reason=reason)
            self.approvals[approval_id] = approval.model_copy(update={"refused": [*approval.refused, refused]})
            raise ApprovalRefused(status, reason)
        made = HumanDecision(who=caller.id, when=datetime.now(UTC), decision=decision, note=note, via=via)
        decisions = [*approval.decisions, made]
        state, outcome = approval.state, None
        if decision == "reject":
            state, outcome = ApprovalState.REJECTED, Outcome.BLOCKED
        elif sum(d.decision == "approve" for d in decisions) >= approval.needed:
            state, outcome = ApprovalState.APPROVED, Outcome.APPROVED
        decided = None
        if outcome is not None:
            reason = f"{outcome.value.capitalize()} by {caller.id}: {note}"
            decided = RoundDecided(release_id=approval.release_id, outcome=outcome, reason=reason, policy="all")
        changed = approval.model_copy(update={"decisions": decisions, "state": state, "outcome": decided})
        self.approvals[approval_id] = changed
        return DecisionResult(changed, True, f"{decision} recorded")

    @staticmethod
    def _refusal(approval: ApprovalView, caller: Caller) -> tuple[int, str] | None:
        if approval.state != ApprovalState.PENDING:
            return 409, f"the release was {approval.state.value} already; nothing changed"
        if caller.id not in approval.approvers:
            return 403, f"{caller.id} is not an approver of this release"
        if any(d.who == caller.id for d in approval.decisions):
            return 409, f"{caller.id} decided already; a second approver is needed"
        return None


class UncountedDoor(Door):
    """The gateway's door with its real authenticator (the keys file of `settings`), but no rate
    limits: those count on the bus, which the page's own tests do without."""

    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__(settings, front=None)  # type: ignore[arg-type]

    async def count(self, client: str) -> None:
        return None


def page_app(settings: GatewaySettings, approvals: FakeApprovals | None, **page_options) -> FastAPI:
    """An app serving only the approval page, admitting through the real authenticator, with
    `approvals` as its approvals core (None: no core at all)."""
    app = FastAPI()
    if approvals is not None:
        app.state.approvals = approvals
    app.include_router(approval_page(UncountedDoor(settings), **page_options))
    return app
