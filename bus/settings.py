"""The one settings object: read once from the environment at startup, then passed in.

Every variable is `MESH_<FIELD>` (for example `MESH_NATS_URL`), except the Anthropic key and
base URL, which keep the SDK's own names so existing setups just work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

FALLBACKS = ("block", "approve_with_warning", "escalate")


class MeshSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MESH_", extra="ignore")

    # --- broker ---
    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS server URL(s), comma-separated for a cluster.",
    )
    nats_credentials: Path | None = Field(default=None, description="NATS .creds file, if the server needs one.")
    namespace: str = Field(
        default="mesh",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
        description="Prefix of every subject, stream and bucket; lets meshes share a server.",
    )
    stream_replicas: int = Field(default=1, ge=1, le=5, description="Replicas of every stream and bucket (3 on a cluster).")
    publish_timeout_seconds: float = Field(default=5.0, gt=0, description="How long to wait for a PubAck.")

    # --- delivery ---
    max_deliver: int = Field(default=5, ge=1, description="Deliveries before a message is dead-lettered.")
    ack_wait_seconds: float = Field(default=30.0, gt=0, description="Redeliver if not acked in this time.")
    max_ack_pending: int = Field(default=256, ge=1, description="Unacked messages a consumer may hold.")
    duplicate_window_seconds: float = Field(default=120.0, gt=0, description="Stream dedupe window.")
    workers: int = Field(default=4, ge=1, description="Messages a service handles concurrently.")

    # --- HTTP ---
    http_host: str = Field(default="127.0.0.1", description="Address services serve HTTP on.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="Port of this service's HTTP API.")

    # --- coordinator ---
    reviewers: Annotated[list[str], NoDecode] = Field(
        default=["security", "compliance"], description="Reviewers every round waits for (comma-separated)."
    )
    policy: str = Field(default="all", description="all | veto | majority | quorum:K")
    deadline_seconds: float = Field(default=30.0, gt=0, description="Time a round waits for its reviewers.")
    fallbacks: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Fallback per missing reviewer, e.g. `security=block,compliance=escalate`.",
    )
    default_fallback: Literal["block", "approve_with_warning", "escalate"] = Field(
        default="escalate", description="Fallback for reviewers not named in `fallbacks`."
    )

    # --- reviewers' brain ---
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_API_KEY", "MESH_ANTHROPIC_API_KEY"),
        description="Use Anthropic's API when set; the offline reviewer otherwise.",
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL", "MESH_ANTHROPIC_BASE_URL")
    )
    model: str = Field(default="claude-sonnet-4-6", description="Model id reviewers ask first.")
    max_tokens: int = Field(default=2048, ge=256, description="Output token cap per model call.")
    llm_timeout_seconds: float = Field(default=20.0, gt=0, description="Timeout of one model call.")

    # --- local runs ---
    home: Path = Field(default=Path(".mesh"), description="Folder for the embedded server's data and run files.")
    log_level: str = Field(default="INFO")
    log_format: Literal["console", "json"] = Field(default="console")

    @field_validator("reviewers", mode="before")
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
        from coordinator.policy import Policy  # the policy module owns the grammar

        Policy.parse(value)
        return value

    def fallback_for(self, reviewer: str) -> str:
        return self.fallbacks.get(reviewer, self.default_fallback)

    @property
    def nats_servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    @property
    def subjects(self):  # -> contracts.Subjects; imported lazily to keep settings import-light
        from contracts.subjects import Subjects

        return Subjects(self.namespace)

    def as_env(self) -> dict[str, str]:
        """The settings that were set explicitly, as MESH_* variables for child processes.

        Secrets are left out on purpose: children inherit them from the environment, and they
        must never be written into a run file or a log.
        """
        env: dict[str, str] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if name.startswith("anthropic_") or value is None:
                continue
            if isinstance(value, list):
                value = ",".join(value)
            elif isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items())
            env[f"MESH_{name.upper()}"] = str(value)
        return env
