"""Every layer's settings in one object, for the tools that start or drive the whole mesh
(the CLI, the local launcher, `mesh bench`, `mesh chaos`).

Services read only their own layer's class; this one is each of them, so anything built from
it gets the settings it expects.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from coordinator.settings import CoordinatorSettings
from services.digest.settings import DigestSettings
from services.gateway.settings import GatewaySettings
from services.review.settings import ReviewerSettings
from services.steward.settings import StewardSettings
from services.watch.settings import WatchSettings

IDENTITIES = "identities"  # below MESH_HOME: the seeds `mesh up` generates


class TraceSettings(BaseSettings):
    """The operator tools' own: where spans go and how long `mesh up` keeps them, where
    `mesh trace` reads them. Services never read these: they export wherever the standard
    OTEL_EXPORTER_OTLP_ENDPOINT tells them."""

    model_config = SettingsConfigDict(env_prefix="MESH_", extra="ignore", populate_by_name=True)

    traces_max_age_seconds: float = Field(
        default=24 * 3600.0, gt=0, description="How long `mesh up`'s trace store keeps a span."
    )
    traces_max_bytes: int = Field(
        default=256 * 2**20,
        ge=2**20,
        description="Most bytes `mesh up`'s trace store keeps; the oldest spans go first.",
    )
    traces_queue: int = Field(
        default=512,
        ge=1,
        description="Exports the trace store holds while storing; past it the receiver answers 503 and the "
        "exporters retry later.",
    )
    jaeger_url: str | None = Field(
        default=None,
        description="Jaeger's query service (`http://jaeger:16686`): `mesh trace` reads its API v3 instead of "
        "the mesh's own trace store.",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="Set by you (the standard OpenTelemetry variable): services export there, and `mesh up` "
        "runs no trace store of its own.",
    )


class MeshSettings(
    CoordinatorSettings,
    ReviewerSettings,
    GatewaySettings,
    DigestSettings,
    WatchSettings,
    StewardSettings,
    TraceSettings,
):
    """Every layer's and service's settings together (the bus's, the coordinator's, the LLM
    layer's, a reviewer's, the gateway's, the digest's, the watch's, the steward's), and the
    operator tools' own (TraceSettings)."""

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
