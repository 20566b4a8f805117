"""The envelope every message carries: who said it, when, why, and which flow it belongs to."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"
MAX_ID_CHARS = 256  # ids and names: generous for any real id, a bound on what a message can carry


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    return uuid4().hex


class Envelope(BaseModel):
    """Fields shared by every message on the bus.

    Producers outside the mesh may omit all of them: an event id, a timestamp and the
    current schema version are filled in, and the correlation id defaults to the
    business key of the message (the release id for release traffic).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    event_id: str = Field(
        default_factory=new_event_id,
        max_length=MAX_ID_CHARS,
        description="Unique id of this message.",
        examples=["9f1c2b7e4d2a4c55a1c3b0f1d2e3a4b5"],
    )
    correlation_id: str = Field(
        default="",
        max_length=MAX_ID_CHARS,
        description="Id shared by every message of one flow; the release id for release reviews.",
        examples=["rel-42"],
    )
    causation_id: str | None = Field(
        default=None,
        max_length=MAX_ID_CHARS,
        description="event_id of the message that caused this one; empty for a flow's first event.",
        examples=["9f1c2b7e4d2a4c55a1c3b0f1d2e3a4b5"],
    )
    producer: str = Field(
        default="external",
        max_length=MAX_ID_CHARS,
        description="Name of the service or system that produced the message.",
        examples=["security", "coordinator", "ci-pipeline"],
    )
    on_behalf_of: str | None = Field(
        default=None,
        max_length=MAX_ID_CHARS,
        description="Who asked for it, when a service published it for someone: the gateway writes the "
        "authenticated caller here (`key:ci-pipeline`, `jwt:https://idp.example#alice`, `webhook:github`); "
        "whatever a caller sends in this field is replaced.",
        examples=["key:ci-pipeline"],
    )
    occurred_at: datetime = Field(
        default_factory=utc_now,
        description="When it happened (UTC, RFC 3339).",
        examples=["2026-11-22T10:00:00Z"],
    )
    schema_version: str = Field(
        default=SCHEMA_VERSION,
        max_length=32,
        description="Version of this message's schema.",
        examples=[SCHEMA_VERSION],
    )
