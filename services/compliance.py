"""The compliance reviewer: personal data, retention, licences, changelog and sign-off rules.

Run it alone with `mesh run compliance` (or `faststream run services.compliance:app --port 8082`).
"""

from bus.runtime import Agent, lazy_app
from bus.settings import MeshSettings
from services.review.reviewer import build_reviewer


def build(settings: MeshSettings) -> Agent:
    return build_reviewer(
        "compliance",
        settings=settings,
        description="Reviews each proposed release for personal data in logs or storage, retention "
        "and deletion changes, licence changes, and missing changelog or sign-off.",
    )


__getattr__ = lazy_app(build)  # `app`, for `faststream run services.compliance:app`
