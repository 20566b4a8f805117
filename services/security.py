"""The security reviewer: secrets, injection, weakened TLS or auth, unsafe code in a release.

Run it alone with `mesh run security` (or `faststream run services.security:app --port 8081`).
"""

from bus.runtime import Agent, lazy_app
from contracts.cards import AgentSkill
from services.review.reviewer import build_reviewer
from services.review.settings import ReviewerSettings

SKILL = AgentSkill(
    id="review.security",
    name="Security review of a release",
    description="Reads a proposed release's diffs for hard-coded secrets and keys, injection, "
    "eval on input, disabled TLS verification, weakened authentication, unsafe permissions and "
    "deserialisation; answers approve, reject or needs_human with findings by file and line.",
    tags=["review", "release.proposed", "security"],
    examples=["Review release rel-42 of payments-api for security risks."],
)


def build(settings: ReviewerSettings) -> Agent:
    return build_reviewer(
        "security",
        settings=settings,
        skill=SKILL,
        description="Reviews each proposed release for hard-coded secrets, injection, disabled TLS, "
        "weakened authentication and other security risks.",
    )


__getattr__ = lazy_app(build, settings_type=ReviewerSettings)  # `app`, for `faststream run services.security:app`
