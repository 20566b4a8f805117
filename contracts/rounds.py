"""Messages the coordinator sends itself about rounds."""

from __future__ import annotations

from pydantic import Field

from contracts.envelope import Envelope


class RoundDeadline(Envelope):
    """`round.deadline`: fired by the NATS server when a round's deadline passes."""

    release_id: str = Field(description="Round whose deadline passed.", examples=["rel-42"])
    content_digest: str = Field(default="", description="Revision of the release whose round it is.")
