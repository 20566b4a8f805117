"""The watch's settings (`MESH_WATCH_*`), over the LLM layer's: the bounds of its self-chosen
schedule, how far back it looks, and when a finding is a warning or critical.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from coordinator.settings import REQUIRED_SKILLS
from services.llm.settings import LLMSettings


class WatchSettings(LLMSettings):
    """What the watch agent reads besides the bus's and the LLM layer's settings."""

    watch_min_interval_seconds: float = Field(
        default=30.0, gt=0, description="Soonest the watch looks again, whatever it (or its model) proposes."
    )
    watch_max_interval_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="Latest the watch looks again, however calm the mesh is."
    )
    # not at once: a check while `mesh up` is still starting the reviewers would call them down
    watch_first_check_seconds: float = Field(
        default=30.0, gt=0, description="When the first check runs, after its schedule is created."
    )
    watch_window_seconds: float = Field(
        default=3600.0, gt=0, description="How far back a check looks for escalated and fallback rounds."
    )
    watch_dead_letters_warning: int = Field(default=1, ge=1, description="New dead letters that make a warning.")
    watch_dead_letters_critical: int = Field(default=10, ge=1, description="New dead letters that are critical.")
    watch_escalations_warning: int = Field(default=3, ge=1, description="Escalated rounds in the window: a warning.")
    watch_escalations_critical: int = Field(default=10, ge=1, description="Escalated rounds in the window: critical.")
    watch_fallbacks_warning: int = Field(default=1, ge=1, description="Rounds closed by a fallback: a warning.")
    watch_fallbacks_critical: int = Field(default=5, ge=1, description="Rounds closed by a fallback: critical.")
    watch_decision_seconds: float = Field(
        default=20.0, gt=0, description="How long the model may take to propose the next check; then the rule decides."
    )
    # Also declared by coordinator.settings.CoordinatorSettings (it requires these reviewers in every
    # round); keep the two the same. A required reviewer without a live instance is critical.
    required_skills: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(REQUIRED_SKILLS),
        description="Review skills every release.proposed round requires, live or not (comma-separated).",
    )

    @field_validator("required_skills", mode="before")
    @classmethod
    def _split_skills(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _ordered(self) -> WatchSettings:
        if self.watch_min_interval_seconds > self.watch_max_interval_seconds:
            raise ValueError(
                f"MESH_WATCH_MIN_INTERVAL_SECONDS ({self.watch_min_interval_seconds:g}) is above "
                f"MESH_WATCH_MAX_INTERVAL_SECONDS ({self.watch_max_interval_seconds:g}); lower the one or raise the other"
            )
        return self
