"""The compliance reviewer: personal data, retention, licences, changelog and sign-off rules.

Run it alone with `mesh run compliance` (or `faststream run services.compliance:app --port 8082`).
"""

from bus.runtime import Agent, lazy_app
from contracts.cards import AgentSkill
from services.review.reviewer import build_reviewer
from services.review.settings import ReviewerSettings

SKILL = AgentSkill(
    id="review.compliance",
    name="Compliance review of a release",
    description="Reads a proposed release for personal data added to logs or storage, retention "
    "and deletion changes, licence changes, and a missing changelog or sign-off where its labels "
    "require one; answers approve, reject or needs_human with findings by file and line.",
    tags=["review", "release.proposed", "compliance"],
    examples=["Review release rel-42 of payments-api for GDPR and licence issues."],
)


def build(settings: ReviewerSettings) -> Agent:
    return build_reviewer(
        "compliance",
        settings=settings,
        skill=SKILL,
        description="Reviews each proposed release for personal data in logs or storage, retention "
        "and deletion changes, licence changes, and missing changelog or sign-off.",
    )


__getattr__ = lazy_app(build, settings_type=ReviewerSettings)  # `app`, for `faststream run services.compliance:app`
