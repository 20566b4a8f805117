"""A message the mesh could not process, kept with everything needed to understand and replay it.

The payload is kept verbatim (it already lives in its source stream, and `mesh dlq replay` sends
it again); the error and the header values are redacted (`contracts.redaction`), so a credential
in an exception message or an `Authorization` header is not copied into one more stream.
"""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from contracts.envelope import utc_now
from contracts.redaction import redact, redact_value

MAX_ERROR_CHARS = 8_000


class DeadLetter(BaseModel):
    """A dead-letter record: the original message, verbatim, and why it died."""

    subject: str = Field(description="Subject the message was published to.")
    payload: str = Field(description="Original payload: UTF-8 text, or base64 (see payload_encoding).")
    payload_encoding: str = Field(default="utf-8", description="`utf-8` or `base64`.")
    headers: dict[str, str] = Field(default_factory=dict, description="Original headers.")
    error: str = Field(description="Why it could not be processed.")
    error_type: str = Field(description="`invalid` (bad JSON or schema) or `failed` (gave up retrying).")
    service: str = Field(description="Service that gave up on it.")
    stream: str | None = Field(default=None, description="Stream it came from.")
    stream_seq: int | None = Field(default=None, description="Its sequence in that stream.")
    consumer: str | None = Field(default=None, description="Durable consumer that read it.")
    deliveries: int = Field(default=1, description="How many times it was delivered.")
    dead_at: datetime = Field(default_factory=utc_now)
    payload_size: int | None = Field(default=None, description="Size of the original payload in bytes.")
    payload_sha256: str | None = Field(default=None, description="Hex SHA-256 of the original payload.")
    payload_truncated: bool = Field(
        default=False,
        description="`payload` holds only the start of the original (it was too large to wrap); "
        "the whole of it is in the object store when `payload_object` is set.",
    )
    payload_object: str | None = Field(
        default=None,
        description="Name of the object holding the whole original payload, in the namespace's "
        "dead-letter payloads bucket.",
        examples=["dlq:MESH_EVENTS:42:coordinator"],
    )

    @field_validator("error")
    @classmethod
    def _redact_error(cls, error: str) -> str:
        # exception messages quote URLs, config and inputs: no secret is stored twice
        return redact(error[:MAX_ERROR_CHARS] + ("…" if len(error) > MAX_ERROR_CHARS else ""))

    @field_validator("headers")
    @classmethod
    def _redact_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return redact_value(headers)

    @classmethod
    def wrap_payload(cls, data: bytes) -> tuple[str, str]:
        """Keep the payload exactly: as text when it is UTF-8, else base64."""
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(data).decode("ascii"), "base64"

    def kept_payload(self) -> bytes:
        """The payload bytes this record holds: the whole original unless `payload_truncated`."""
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")

    def original_payload(self) -> bytes:
        """The original payload; raises `ValueError` when the record only holds its start."""
        if self.payload_truncated:
            raise ValueError(
                "this dead letter holds only the start of its payload; `bus.ops.dead_letters.original_payload` fetches the "
                "whole of it from the object store"
            )
        return self.kept_payload()
