"""Which contract travels on which subject, by the names users type (`release.proposed`)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contracts.alerts import MeshAlert
from contracts.approvals import (
    ApprovalDecided,
    ApprovalExpiring,
    ApprovalRequested,
    ApprovalTimer,
    DecisionVerdict,
)
from contracts.audit import AuditRecord
from contracts.deadletters import DeadLetter
from contracts.deadlines import RoundDeadline
from contracts.digests import DigestDelivered, DigestPublished
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted
from contracts.schedules import ScheduleDefinition
from contracts.stewardship import DecisionRecorded, ServiceRiskChanged


@dataclass(frozen=True)
class Contract:
    name: str
    model: type[BaseModel]
    summary: str
    publishable: bool = False  # may users publish it from outside the mesh?


CONTRACTS: dict[str, Contract] = {
    c.name: c
    for c in (
        Contract("release.proposed", ReleaseProposed, "A release needs review.", publishable=True),
        Contract("review.submitted", ReviewSubmitted, "One reviewer's decision."),
        Contract("round.decided", RoundDecided, "The one outcome of a review round."),
        Contract("round.deadline", RoundDeadline, "A round's deadline passed (fired by NATS)."),
        Contract("dead.letter", DeadLetter, "A message the mesh could not process."),
        Contract("service.decision_recorded", DecisionRecorded, "A decided release, in the steward's history."),
        Contract("service.risk_changed", ServiceRiskChanged, "The steward's risk level of a service moved."),
        Contract("digest.published", DigestPublished, "A digest of the mesh's work over one window."),
        Contract("digest.delivered", DigestDelivered, "What became of one digest at the outbound webhook."),
        Contract("mesh.alert", MeshAlert, "The watch agent found a problem in the mesh."),
        Contract("schedule.definition", ScheduleDefinition, "An agent's schedule; fired as its ticks."),
        Contract("approval.requested", ApprovalRequested, "An escalated release waits for a person's decision."),
        Contract("approval.expiring", ApprovalExpiring, "Nobody has decided an approval and its deadline is near."),
        Contract("approval.decided", ApprovalDecided, "A person approved or rejected an escalated release."),
        Contract("approval.verdict", DecisionVerdict, "Whether the coordinator took a person's decision, and why."),
        Contract("approval.timer", ApprovalTimer, "An approval's deadline or reminder (fired by NATS)."),
        Contract("audit.record", AuditRecord, "One immutable record of the approvals' audit trail."),
    )
}


def json_schema(name: str) -> dict:
    """JSON Schema of one contract, titled with its wire name."""
    contract = CONTRACTS[name]
    schema = contract.model.model_json_schema(mode="validation")
    schema["$id"] = f"urn:agent-mesh:contract:{name}"
    schema["description"] = (schema.get("description") or contract.summary).strip()
    return schema
