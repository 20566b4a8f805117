"""The gateway's settings (`MESH_GATEWAY_*`), over the bus's: limits at the door, where its
credentials and webhook secrets are read from, and how long a request may be held."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bus.settings import BusSettings


class GatewaySettings(BusSettings):
    """What the gateway reads besides the bus's settings."""

    gateway_body_limit_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest request body accepted; a bigger one is a 413."
    )
    gateway_wait_max_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Longest `?wait=` a request may ask for (larger values are cut to it); past it the answer "
        "is a 202 with the status URL, never a 504.",
    )
    gateway_sse_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="How often an idle event stream sends a comment, so proxies keep it open."
    )
    gateway_rate_limit: int = Field(
        default=600, ge=1, description="Requests one client may make per rate window, across every gateway replica."
    )
    gateway_rate_window_seconds: float = Field(default=60.0, ge=1, description="The rate window.")
    gateway_held_per_client: int = Field(
        default=16,
        ge=1,
        description="Requests one client may hold open at once (`?wait`, event streams), across every replica.",
    )
    gateway_held_lease_seconds: float = Field(
        default=30.0,
        ge=3,
        description="How long a held request's place outlives a gateway that died holding it.",
    )
    gateway_api_keys_file: Path | None = Field(
        default=None,
        description="API keys, stored hashed, with their scopes (`mesh gateway keys add` writes it); default "
        "`$MESH_HOME/gateway/api-keys.json`. Read again when it changes.",
    )
    gateway_webhooks_file: Path | None = Field(
        default=None,
        description="Webhook sources with their signing secrets and schemes; default "
        "`$MESH_HOME/gateway/webhooks.json`. Read again when it changes.",
    )
    gateway_webhook_tolerance_seconds: float = Field(
        default=300.0, gt=0, description="How far a webhook's timestamp may be from now (Standard Webhooks)."
    )
    gateway_webhook_replay_seconds: float = Field(
        default=7 * 24 * 3600.0,
        ge=1,
        description="How long a GitHub delivery is remembered against replays (GitHub signs no timestamp).",
    )
    gateway_jwt_jwks_url: str | None = Field(
        default=None, description="JWKS URL of the identity provider whose bearer JWTs the gateway accepts."
    )
    gateway_jwt_issuer: str | None = Field(default=None, description="The `iss` every accepted JWT must carry.")
    gateway_jwt_audience: str | None = Field(default=None, description="The `aud` every accepted JWT must carry.")
    gateway_approval_wait_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="How long a decision on an approval waits for the coordinator's verdict; past it the answer "
        "is a 202 (the decision stays on the bus and is taken or refused when the coordinator runs).",
    )
    gateway_idempotency_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long an `Idempotency-Key` is remembered (the same key with other content is a 409).",
    )

    @property
    def gateway_folder(self) -> Path:
        return self.home / "gateway"

    @property
    def api_keys_path(self) -> Path:
        return self.gateway_api_keys_file or self.gateway_folder / "api-keys.json"

    @property
    def webhooks_path(self) -> Path:
        return self.gateway_webhooks_file or self.gateway_folder / "webhooks.json"
