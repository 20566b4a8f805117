"""Messages the coordinator sends itself about rounds, and how their moments are written."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pydantic import Field

from contracts.envelope import Envelope


class RoundDeadline(Envelope):
    """`round.deadline`: fired by the NATS server when a round's deadline passes."""

    release_id: str = Field(description="Round whose deadline passed.", examples=["rel-42"])
    content_digest: str = Field(default="", description="Revision of the release whose round it is.")


def rfc3339_ceil(moment: datetime) -> str:
    """`moment` as RFC 3339 UTC with milliseconds, rounded up: a deadline may fire a little late, never early.

    The form of a round deadline's `Nats-Schedule: @at …` and of its message id.
    """
    millis = math.ceil(moment.timestamp() * 1000)
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
