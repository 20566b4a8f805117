"""`mesh.alert`: the watch agent found something wrong with the mesh.

One alert per problem kind per check, on `<ns>.alerts.<kind>` (stream `<NS>_ALERTS`); a check
that finds nothing wrong publishes nothing. The message id names the check and the kind, so a
redelivered check publishes each of its alerts once.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from contracts.envelope import Envelope
from contracts.subjects import subject_token


class AlertKind(StrEnum):
    DEAD_LETTERS = "dead_letters"  # messages were dead-lettered since the last alert of this kind
    ESCALATION_BACKLOG = "escalation_backlog"  # rounds escalated to a human in the recent window
    REVIEWER_DOWN = "reviewer_down"  # a reviewer rounds wait for has no live instance
    FALLBACK_ROUNDS = "fallback_rounds"  # rounds decided with a fallback for a missing reviewer


class AlertSeverity(StrEnum):
    WARNING = "warning"  # someone should look today
    CRITICAL = "critical"  # releases are being blocked, escalated or decided without a reviewer now


class MeshAlert(Envelope):
    """`mesh.alert`: one problem the watch found in one check, with the figures behind it."""

    kind: AlertKind = Field(description="What is wrong.", examples=["reviewer_down"])
    severity: AlertSeverity = Field(description="warning or critical.", examples=["critical"])
    detail: str = Field(
        max_length=2000,
        description="One or two sentences a human can act on.",
        examples=["security has no live instance: rounds that need it will close by its fallback (block)."],
    )
    counts: dict[str, int] = Field(
        default_factory=dict,
        description="The figures behind the alert, by name (a service, a reviewer, `total`…).",
        examples=[{"security": 0, "total": 1}],
    )
    check_id: str = Field(
        default="",
        max_length=256,
        description="The check that raised it (the watch's schedule tick id).",
        examples=["watch:check:2026-11-22T10:00:00Z"],
    )
    window_seconds: float | None = Field(
        default=None, ge=0, description="How far back the check looked, when it looked at a window.", examples=[3600]
    )
    dead_letter_seq: int | None = Field(
        default=None,
        ge=0,
        description="For `dead_letters`: the last dead-letter stream sequence counted; the next check counts "
        "only records after it.",
        examples=[118],
    )


def alert_msg_id(check_id: str, kind: AlertKind) -> str:
    """One alert of each kind per check: a redelivered check's alert is stored once."""
    return f"alert:{subject_token(check_id)}:{kind.value}"
