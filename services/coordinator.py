"""The coordinator, as a deployable service: opens a round per proposal, applies the policy,
publishes one outcome per release.

Run it alone with `mesh run coordinator` (or `faststream run services.coordinator:app --port 8083`).
"""

from bus.runtime import lazy_app
from coordinator.service import build_coordinator as build
from coordinator.settings import CoordinatorSettings

__getattr__ = lazy_app(build, settings_type=CoordinatorSettings)  # `app`, for `faststream run services.coordinator:app`

__all__ = ["build"]
