"""The coordinator's settings: who reviews each round, how votes combine, and what a reviewer
that never answers counts as. Read from the same `MESH_*` variables as the bus's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from bus.settings import BusSettings
from contracts.outcomes import Fallback
from coordinator.approvals import ApprovalRules, check_trigger, parse_groups
from coordinator.policy import Policy

FALLBACKS = tuple(f.value for f in Fallback)
# Fail closed: a release nobody could check for secrets is blocked, not waved through.
REQUIRED_SKILLS = ("review.security", "review.compliance")
DEFAULT_FALLBACKS = {"security": "block"}


class CoordinatorSettings(BusSettings):
    """The bus's settings plus the coordinator's: reviewers, policy, deadline, fallbacks."""

    required_skills: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(REQUIRED_SKILLS),
        description="Review skills every release.proposed round requires, live or not (comma-separated). "
        "Each is answered by the agents whose card offers it, or by the agent named after it "
        "(`review.security` -> `security`) when no card does. Discovery never removes one.",
    )
    reviewers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More reviewers every round waits for, live or not (comma-separated). Live agents with "
        "a review skill for the event join them unless `reviewer_discovery` is off.",
    )
    exclude_reviewers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Agents never asked to review (comma-separated)."
    )
    reviewer_discovery: bool = Field(default=True, description="Pick reviewers from the live registry.")
    policy: str = Field(default="all", description="all | veto | majority | quorum:K")
    # Also declared by services.llm.settings.LLMSettings (a reviewer's model calls end by then):
    # keep the two the same.
    deadline_seconds: float = Field(default=30.0, gt=0, description="Time a round waits for its reviewers.")
    fallbacks: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Fallback per missing reviewer, e.g. `security=block,compliance=escalate`, over the "
        "built-in `security=block`.",
    )
    default_fallback: Literal["block", "approve_with_warning", "escalate"] = Field(
        default="escalate", description="Fallback for reviewers not named in `fallbacks`."
    )

    # --- human approval of escalations (coordinator/approvals.py) ---
    approvers: str = Field(
        default="",
        description="Who may decide an escalated release, by group: `default=key:alice,key:bob;"
        "label:pci=key:carol;critical=key:carol,key:dave`. A label group applies to releases with that label, "
        "a severity group to releases whose most severe finding is at least that severe; the groups that "
        "apply replace `default`, and when several apply an approver must be in each. Ids are gateway callers "
        "(`key:<name>`, `jwt:<issuer>#<subject>`) or operators (`operator:<user>@<host>`, `operator:<name>` with "
        "`mesh approve --as <name>`). Empty: an escalation is final (`escalated`), as nobody could decide it.",
    )
    two_person_rule: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="When two different approvers must approve (comma-separated): a severity (`critical`: a "
        "finding at least that severe), `label:<name>`, or `all`.",
    )
    approval_deadline_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        le=14 * 24 * 3600.0,  # the approvals stream keeps the deadline's schedule 30 days
        description="How long an escalated release waits for a person before its fallback applies.",
    )
    approval_fallback: Literal["block", "escalate"] = Field(
        default="block",
        description="What the approval deadline applies when nobody decided: block (fail closed), or escalate "
        "(an `escalated` outcome). Never approve.",
    )
    approval_reminder: float = Field(
        default=0.8,
        ge=0,
        lt=1,
        description="When, as a fraction of the approval deadline, `approval.expiring` is sent if nobody has "
        "decided (0: never).",
    )

    @field_validator("approvers")
    @classmethod
    def _parse_approvers(cls, value: str) -> str:
        parse_groups(value)  # the approvals module owns the grammar
        return value

    @field_validator("two_person_rule", mode="before")
    @classmethod
    def _split_triggers(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("two_person_rule")
    @classmethod
    def _known_triggers(cls, value: list[str]) -> list[str]:
        for trigger in value:
            check_trigger(trigger)
        return value

    def approval_rules(self) -> ApprovalRules | None:
        """The approval rules a round opened now keeps (None when no approver is configured)."""
        return ApprovalRules.from_settings(self)

    @field_validator("reviewers", "exclude_reviewers", "required_skills", mode="before")
    @classmethod
    def _split_reviewers(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _parse_fallbacks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, sep, fallback = item.partition("=")
            if not sep:
                raise ValueError(f"fallback {item!r} should look like reviewer=block")
            pairs[name.strip()] = fallback.strip()
        return pairs

    @field_validator("fallbacks")
    @classmethod
    def _known_fallbacks(cls, value: dict[str, str]) -> dict[str, str]:
        for name, fallback in value.items():
            if fallback not in FALLBACKS:
                raise ValueError(f"fallback for {name!r} is {fallback!r}; use one of {', '.join(FALLBACKS)}")
        return value

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        Policy.parse(value)  # the policy module owns the grammar
        return value

    def fallback_for(self, reviewer: str) -> str:
        """The fallback of `reviewer` when it has not answered by the deadline."""
        return self.fallbacks.get(reviewer) or DEFAULT_FALLBACKS.get(reviewer) or self.default_fallback
