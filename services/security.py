"""The security reviewer: secrets, injection, weakened TLS or auth, unsafe code in a release.

Run it alone with `mesh run security` (or `faststream run services.security:app --port 8081`).
"""

from bus.runtime import Agent, lazy_app
from bus.settings import MeshSettings
from services.review.reviewer import build_reviewer


def build(settings: MeshSettings) -> Agent:
    return build_reviewer(
        "security",
        settings=settings,
        description="Reviews each proposed release for hard-coded secrets, injection, disabled TLS, "
        "weakened authentication and other security risks.",
    )


__getattr__ = lazy_app(build)  # `app`, for `faststream run services.security:app`
