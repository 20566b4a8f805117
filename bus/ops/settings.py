"""Every layer's settings in one object, for the tools that start or drive the whole mesh
(the CLI, the local launcher, `mesh bench`, `mesh chaos`).

Services read only their own layer's class; this one is each of them, so anything built from
it gets the settings it expects.
"""

from __future__ import annotations

from coordinator.settings import CoordinatorSettings
from services.review.settings import ReviewerSettings


class MeshSettings(CoordinatorSettings, ReviewerSettings):
    """The bus's, the coordinator's, the LLM layer's and a reviewer's settings together."""
