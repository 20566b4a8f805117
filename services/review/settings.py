"""A reviewer's settings: the LLM layer's, plus the offline rules' budget and the round's
deadline its model chain must end by.
"""

from __future__ import annotations

from pydantic import Field

from contracts.reviews import Severity
from services.llm.settings import LLMSettings


class ReviewerSettings(LLMSettings):
    """What a reviewer agent and its brain read."""

    review_budget_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Time the offline rules may take over one release (in a worker thread); past it the "
        "review answers needs_human with finding REV001, never approve.",
    )
    review_guard_severity: Severity = Field(
        default=Severity.HIGH,
        description="Rule findings at or above this severity stand whatever a model answers, and its verdict is "
        "at least what they call for (critical | high | medium | low | info).",
    )
    # Also declared by coordinator.settings.CoordinatorSettings (it runs the round); keep the two
    # the same. A reviewer's model calls end MESH_LLM_DEADLINE_MARGIN_SECONDS before it.
    deadline_seconds: float = Field(default=30.0, gt=0, description="Time a round waits for its reviewers.")
