"""Every layer's settings in one object, for the tools that start or drive the whole mesh
(the CLI, the local launcher, `mesh bench`, `mesh chaos`).

Services read only their own layer's class; this one is each of them, so anything built from
it gets the settings it expects.
"""

from __future__ import annotations

from pathlib import Path

from coordinator.settings import CoordinatorSettings
from services.review.settings import ReviewerSettings

IDENTITIES = "identities"  # below MESH_HOME: the seeds `mesh up` generates


class MeshSettings(CoordinatorSettings, ReviewerSettings):
    """The bus's, the coordinator's, the LLM layer's and a reviewer's settings together."""

    @property
    def identities_folder(self) -> Path:
        return self.home / IDENTITIES

    def with_identity(self, name: str) -> MeshSettings:
        """These settings connecting as `name` (its seed in MESH_HOME, as `mesh up` wrote it),
        unless MESH_NATS_CREDENTIALS names a credential explicitly."""
        if self.nats_credentials is not None:
            return self
        seed = self.identities_folder / f"{name}.nk"
        return self.model_copy(update={"nats_credentials": seed}) if seed.exists() else self
