"""A message the mesh could not process, kept with everything needed to understand and replay it."""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, Field

from contracts.envelope import utc_now


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

    @classmethod
    def wrap_payload(cls, data: bytes) -> tuple[str, str]:
        """Keep the payload exactly: as text when it is UTF-8, else base64."""
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(data).decode("ascii"), "base64"

    def original_payload(self) -> bytes:
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")
