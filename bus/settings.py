"""The one settings object: read once from the environment at startup, then passed in.

Every variable is `MESH_<FIELD>` (for example `MESH_NATS_URL`), except the Anthropic key and
base URL, which keep the SDK's own names so existing setups just work.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

FALLBACKS = ("block", "approve_with_warning", "escalate")
# Fail closed: a release nobody could check for secrets is blocked, not waved through.
REQUIRED_SKILLS = ("review.security", "review.compliance")
DEFAULT_FALLBACKS = {"security": "block"}


class MeshSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MESH_", extra="ignore")

    # --- broker ---
    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS server URL(s), comma-separated for a cluster.",
    )
    nats_credentials: Path | None = Field(default=None, description="NATS .creds file, if the server needs one.")
    nats_tls_ca: Path | None = Field(
        default=None, description="CA bundle of the NATS servers' certificates (without it, tls:// uses the system CAs)."
    )
    nats_tls_cert: Path | None = Field(default=None, description="Client certificate, when the servers require one.")
    nats_tls_key: Path | None = Field(default=None, description="Private key of the client certificate.")
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
    # 16: a handler mostly waits (PubAcks, KV compare-and-set, a model call), and more of them in
    # flight lets each round trip carry more (`mesh bench` at C=128: 4 -> 16 gave +28 % proposals/s
    # at R=1, +22 % at R=2).
    workers: int = Field(default=16, ge=1, description="Messages a service handles concurrently.")
    # Longer than a reviewer's worst case: its rules budget plus a model chain cut off at the
    # round's deadline (MESH_DEADLINE_SECONDS) plus publishing.
    handler_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A handler still running after this long is cancelled and counts as failed "
        "(retried, then dead-lettered on the last delivery), so no message is kept alive for ever.",
    )

    # --- HTTP ---
    http_host: str = Field(default="127.0.0.1", description="Address services serve HTTP on.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="Port of this service's HTTP API.")

    # --- discovery ---
    advertise_url: str | None = Field(default=None, description="HTTP URL others reach this process at.")
    instance_id: str = Field(
        default_factory=lambda: re.sub(r"[^A-Za-z0-9_-]", "-", f"{socket.gethostname()}-{os.getpid()}"),
        pattern=r"^[A-Za-z0-9_-]+$",
        description="This process's id among its agent's replicas.",
    )
    heartbeat_seconds: float = Field(default=5.0, gt=0, description="How often a live instance says so.")
    heartbeat_ttl_seconds: float = Field(default=15.0, ge=1, description="An instance silent this long is gone.")

    # --- coordinator ---
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
    deadline_seconds: float = Field(default=30.0, gt=0, description="Time a round waits for its reviewers.")
    fallbacks: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Fallback per missing reviewer, e.g. `security=block,compliance=escalate`, over the "
        "built-in `security=block`.",
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
    review_budget_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Time the offline rules may take over one release (in a worker thread); past it the "
        "review answers needs_human with finding REV001, never approve.",
    )

    # --- LLM access (issue 5) ---
    # Chains, limits and prices are checked by services.llm at load time; errors name the variable.
    llm_chain: str = Field(
        default="",
        description="Fallback chain of every agent, ending in `offline`, e.g. "
        "`claude-sonnet-4-6,claude-haiku-4-5,offline`; empty means `<MESH_MODEL>,offline`.",
    )
    llm_chains: str = Field(
        default="",
        description='Per-agent chains: JSON `{"compliance": ["claude-haiku-4-5", "offline"]}` or '
        "`security=claude-sonnet-4-6>claude-haiku-4-5>offline,compliance=claude-haiku-4-5>offline`.",
    )
    llm_max_in_flight: int = Field(default=8, ge=1, description="Model calls in flight per model in this process.")
    llm_rpm: float = Field(
        default=50, gt=0, description="Requests per minute per model for this process: its share of the key's limit."
    )
    llm_tpm: float = Field(
        default=50_000, gt=0, description="Tokens per minute per model for this process (cache reads not counted)."
    )
    llm_limits: str = Field(
        default="",
        description='Per-model limits: JSON `{"claude-haiku-4-5": {"rpm": 100, "tpm": 80000, "in_flight": 16}}` '
        "or `claude-haiku-4-5=rpm:100/tpm:80000/in_flight:16`.",
    )
    llm_max_attempts: int = Field(
        default=3, ge=1, le=10, description="Requests per model for errors that time cures (429, 5xx, timeouts)."
    )
    llm_backoff_seconds: float = Field(default=0.5, gt=0, description="First retry backoff; `retry-after` wins.")
    llm_backoff_max_seconds: float = Field(default=8.0, gt=0, description="Longest retry backoff.")
    llm_breaker_failures: int = Field(default=5, ge=1, description="Failed calls in a row that open a model's circuit.")
    llm_breaker_reset_seconds: float = Field(default=30.0, gt=0, description="Open circuit's wait before a probe.")
    llm_deadline_margin_seconds: float = Field(
        default=2.0, ge=0, description="Model calls end this long before the round's deadline."
    )
    llm_tier_model: str = Field(
        default="", description="Cheap model asked first for small, low-risk releases; empty: no tiering."
    )
    llm_tier_max_chars: int = Field(default=6000, ge=0, description="Largest prompt the cheap model is asked first.")
    llm_tier_min_confidence: float = Field(
        default=0.8, ge=0, le=1, description="Escalate the cheap model's answer below this confidence."
    )
    llm_prices: str = Field(
        default="",
        description="USD per million tokens over the built-in table: JSON, or "
        "`model=input/output/cache_read/cache_write`, comma-separated.",
    )
    llm_round_budget_usd: float | None = Field(
        default=None, gt=0, description="Most one reviewer spends on one release; then its chain goes `offline`."
    )
    llm_round_budget_tokens: int | None = Field(default=None, gt=0, description="The same budget, in tokens.")
    llm_prompt_caching: bool = Field(default=True, description="Mark system prompt and tools with cache_control.")

    @field_validator("llm_chain", "llm_chains", "llm_limits", "llm_prices")
    @classmethod
    def _check_llm_value(cls, value: str, info: ValidationInfo) -> str:
        from services.llm.config import check_setting  # the LLM layer owns these grammars

        check_setting(info.field_name, value)
        return value

    # --- local runs ---
    home: Path = Field(default=Path(".mesh"), description="Folder for the embedded server's data and run files.")
    log_level: str = Field(default="INFO")
    log_format: Literal["console", "json"] = Field(default="console")

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
        from coordinator.policy import Policy  # the policy module owns the grammar

        Policy.parse(value)
        return value

    def fallback_for(self, reviewer: str) -> str:
        return self.fallbacks.get(reviewer) or DEFAULT_FALLBACKS.get(reviewer) or self.default_fallback

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
