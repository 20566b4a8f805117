"""A release someone wants to ship: the event that opens a review round."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.envelope import Envelope


class Change(BaseModel):
    """One changed file, as a unified diff (lines starting with `+` were added)."""

    model_config = ConfigDict(extra="allow")

    path: str = Field(min_length=1, description="File path in the repository.", examples=["src/refunds.py"])
    diff: str = Field(
        default="",
        description="Unified diff of the file; `+` lines are added, `-` lines removed.",
        examples=["+def refund(order_id):\n+    ..."],
    )


class ReleaseProposed(Envelope):
    """`release.proposed`: a release is ready and needs its security and compliance review."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "release_id": "rel-42",
                    "service": "payments-api",
                    "version": "2.4.0",
                    "title": "Add refund endpoint",
                    "description": "Adds POST /refunds.",
                    "author": "dev@example.com",
                    "changes": [{"path": "src/refunds.py", "diff": "+def refund(order_id):\n+    ..."}],
                    "labels": ["backend"],
                }
            ]
        },
    )

    release_id: str = Field(min_length=1, max_length=200, description="Unique id of the release.", examples=["rel-42"])
    service: str = Field(min_length=1, description="Service being released.", examples=["payments-api"])
    version: str = Field(min_length=1, description="Version being released.", examples=["2.4.0"])
    title: str = Field(default="", description="One-line summary.", examples=["Add refund endpoint"])
    description: str = Field(default="", description="What the release does and why.")
    author: str = Field(default="", description="Who proposed it.", examples=["dev@example.com"])
    changes: list[Change] = Field(default_factory=list, description="Changed files with their diffs.")
    labels: list[str] = Field(default_factory=list, description="Free labels.", examples=[["backend"]])

    @model_validator(mode="after")
    def _correlate_by_release(self) -> ReleaseProposed:
        if not self.correlation_id:
            self.correlation_id = self.release_id
        return self

    @property
    def content_digest(self) -> str:
        """SHA-256 (hex) of what is proposed: every field but the envelope's.

        The same content always has the same digest, whoever sends it and when; any change to
        a diff, a path, a label, the description or an extra field makes a new one. With the
        release id it names a *revision*: its round, its reviews and its outcome.
        """
        content = self.model_dump(mode="json", exclude=_ENVELOPE_FIELDS)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


# Who sent it, when and in which flow: not part of what is proposed.
_ENVELOPE_FIELDS = set(Envelope.model_fields)
