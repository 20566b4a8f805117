"""`audit.record`: one immutable line of the audit trail — who did what, when, to which release.

Records live in the audit stream (`<NS>_AUDIT`, on `<ns>.audit.approval.<kind>.<release>`), which
denies deleting and purging messages and keeps them `MESH_AUDIT_RETENTION_DAYS`; `mesh audit`
lists them. Each record's message id names what it records, so a redelivered handler stores it once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from contracts.envelope import Envelope


class AuditKind(StrEnum):
    REQUESTED = "requested"  # a round began waiting for a person
    DECIDED = "decided"  # a person's decision was taken
    REFUSED = "refused"  # a person's decision was refused (not an approver, twice, too late)
    EXPIRED = "expired"  # nobody decided by the approval deadline; the fallback applied


class AuditRecord(Envelope):
    """One thing that happened to an approval, for the record."""

    kind: AuditKind = Field(description="requested, decided, refused or expired.", examples=["decided"])
    at: datetime = Field(description="When it happened (for a decision: when the bus stored it).")
    who: str = Field(
        max_length=256,
        description="Who acted: the person deciding, or `coordinator` for a request or an expiry.",
        examples=["key:alice"],
    )
    what: str = Field(max_length=2000, description="What happened, in one sentence.")
    approval_id: str = Field(description="The approval.", examples=["rel-42.3812ed07d3c8"])
    release_id: str = Field(description="Its release.", examples=["rel-42"])
    content_digest: str = Field(default="", description="Its revision.")
    decision: str | None = Field(default=None, description="approve or reject, for a decision.")
    note: str = Field(default="", max_length=2000, description="The person's note.")
    outcome: str | None = Field(default=None, description="The outcome it led to, if it decided the release.")
    trace_id: str | None = Field(default=None, max_length=64, description="OpenTelemetry trace id of the flow.")
