"""`digest.published` and `digest.delivered`: the digest agent's summary of a window of the mesh's
work, and what became of its delivery to the outbound webhook.

A digest covers `[window_start, window_end)`; its message id is the window's, so a redelivered
tick stores it once. Its delivery record is keyed by the tick that made it (one per tick, on a
subject of its own): a tick delivered again finds it and does nothing twice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from contracts.envelope import Envelope
from contracts.reviews import TokenUsage
from contracts.subjects import subject_token


class FindingCount(BaseModel):
    """One rule and how many releases it fired on."""

    rule: str = Field(max_length=64, description="Rule id.", examples=["SEC001"])
    releases: int = Field(ge=0, description="Releases (revisions) with at least one such finding.", examples=[4])
    severity: str = Field(default="", description="Its worst severity seen.", examples=["critical"])


class AgentCost(BaseModel):
    """What one reviewer spent over the window, from the reviews counted in outcomes."""

    agent: str = Field(description="Reviewer.", examples=["security"])
    reviews: int = Field(ge=0, description="Reviews counted.", examples=[42])
    tokens: int = Field(default=0, ge=0, description="Tokens spent (input, output and cache).", examples=[51234])
    cost_usd: float = Field(default=0.0, ge=0.0, description="What its model calls cost.", examples=[0.3121])


class DigestPublished(Envelope):
    """`digest.published`: the mesh's releases, findings, dead letters, alerts and costs over one window."""

    window_start: datetime = Field(description="Start of the window (inclusive).", examples=["2026-11-21T09:00:00Z"])
    window_end: datetime = Field(
        description="End of the window (exclusive): the tick's scheduled time.", examples=["2026-11-22T09:00:00Z"]
    )
    schedule: str = Field(default="", description="The schedule whose tick made it.", examples=["daily"])
    releases: int = Field(default=0, ge=0, description="Outcomes (decided revisions) in the window.", examples=[57])
    outcomes: dict[str, int] = Field(
        default_factory=dict,
        description="Outcomes by kind (approved, blocked, escalated).",
        examples=[{"approved": 50, "blocked": 5, "escalated": 2}],
    )
    top_findings: list[FindingCount] = Field(default_factory=list, description="The most frequent findings.")
    escalated: list[str] = Field(
        default_factory=list,
        description="Releases whose last outcome in the window is escalated (a human must decide), first listed.",
        examples=[["rel-42"]],
    )
    escalated_total: int = Field(default=0, ge=0, description="How many releases are still escalated.")
    fallback_rounds: int = Field(default=0, ge=0, description="Outcomes decided with a fallback for a reviewer.")
    dead_letters: dict[str, int] = Field(
        default_factory=dict, description="Dead letters by service.", examples=[{"coordinator": 2}]
    )
    dead_letters_total: int = Field(default=0, ge=0, description="Dead letters in the window.")
    alerts: dict[str, int] = Field(
        default_factory=dict, description="`mesh.alert` events by kind.", examples=[{"reviewer_down": 3}]
    )
    alerts_total: int = Field(default=0, ge=0, description="`mesh.alert` events in the window.")
    costs: list[AgentCost] = Field(default_factory=list, description="Spend per reviewer, highest first.")
    cost_usd: float = Field(default=0.0, ge=0.0, description="What every counted review cost.")
    tokens: int = Field(default=0, ge=0, description="Tokens every counted review spent.")
    summary: str = Field(
        default="",
        max_length=4000,
        description="A short written summary by a model; empty offline (the figures say it all).",
    )
    summary_model: str = Field(
        default="", description="Model that wrote the summary; empty when none did.", examples=["claude-haiku-4-5"]
    )
    summary_tokens: TokenUsage = Field(default_factory=TokenUsage, description="Tokens the summary spent.")
    summary_cost_usd: float = Field(default=0.0, ge=0.0, description="What the summary cost.")


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"  # the webhook answered 2xx
    FAILED = "failed"  # it never did, within the attempts and the tick's deadline
    SKIPPED = "skipped"  # no webhook is configured


class DigestDelivered(Envelope):
    """`digest.delivered`: what became of one tick's digest at the outbound webhook."""

    tick_id: str = Field(max_length=256, description="The tick that made and delivered the digest.")
    digest_event_id: str = Field(description="`event_id` of the digest delivered.")
    window_end: datetime = Field(description="End of that digest's window.")
    status: DeliveryStatus = Field(description="delivered, failed or skipped.", examples=["failed"])
    attempts: int = Field(default=0, ge=0, description="HTTP requests made.", examples=[4])
    http_status: int | None = Field(default=None, description="The last HTTP status the webhook answered.")
    detail: str = Field(
        default="",
        max_length=1000,
        description="What happened, in one sentence (never the webhook's URL).",
        examples=["failed after 4 attempts: the webhook answered HTTP 503"],
    )


def digest_window_key(window_start: datetime, window_end: datetime) -> str:
    return f"{window_start.isoformat()}/{window_end.isoformat()}"


def digest_msg_id(window_start: datetime, window_end: datetime) -> str:
    """One digest per window, however often its tick is delivered."""
    return f"digest:{digest_window_key(window_start, window_end)}"


def digest_event_id(window_start: datetime, window_end: datetime) -> str:
    """The digest's `event_id`, the same on every redelivery (the delivery record points at it)."""
    return hashlib.sha256(digest_msg_id(window_start, window_end).encode()).hexdigest()[:32]


def digest_delivery_msg_id(tick_id: str) -> str:
    """One delivery record per tick."""
    return f"digest-delivery:{subject_token(tick_id)}"
