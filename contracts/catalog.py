"""Which contract travels on which subject, by the names users type (`release.proposed`)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contracts.deadletters import DeadLetter
from contracts.deadlines import RoundDeadline
from contracts.outcomes import RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted


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
    )
}


def json_schema(name: str) -> dict:
    """JSON Schema of one contract, titled with its wire name."""
    contract = CONTRACTS[name]
    schema = contract.model.model_json_schema(mode="validation")
    schema["$id"] = f"urn:agent-mesh:contract:{name}"
    schema["description"] = (schema.get("description") or contract.summary).strip()
    return schema
