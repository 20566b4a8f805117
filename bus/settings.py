"""The bus's settings: broker, delivery, HTTP, discovery and local runs. Read once from the
environment at startup, then passed in.

Every variable is `MESH_<FIELD>` (for example `MESH_NATS_URL`). Each layer above owns its own
settings and extends this class: `coordinator.settings.CoordinatorSettings`,
`services.llm.settings.LLMSettings`, `services.review.settings.ReviewerSettings`; the operator
tools combine them all in `bus.ops.settings.MeshSettings`.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from contracts.subjects import Subjects


class BusSettings(BaseSettings):
    """What every process on the bus reads: how to reach NATS, how messages are delivered,
    where to serve HTTP, how often to say it is alive."""

    model_config = SettingsConfigDict(env_prefix="MESH_", extra="ignore")

    # --- broker ---
    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS server URL(s), comma-separated for a cluster.",
    )
    nats_credentials: Path | None = Field(
        default=None,
        description="This process's NATS identity: an nkey seed file (`mesh identities generate` writes one per "
        "service) or a .creds file (JWT user).",
    )
    nats_identity: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Name of that identity; its replies arrive on `_INBOX.<name>.>`, where only it may listen. "
        "Defaults to the credential file's name without its extension.",
    )
    nats_tls_ca: Path | None = Field(
        default=None,
        description="CA bundle of the NATS servers' certificates (without it, tls:// uses the system CAs).",
    )
    nats_tls_cert: Path | None = Field(default=None, description="Client certificate, when the servers require one.")
    nats_tls_key: Path | None = Field(default=None, description="Private key of the client certificate.")
    namespace: str = Field(
        default="mesh",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
        description="Prefix of every subject, stream and bucket; lets meshes share a server.",
    )
    stream_replicas: int = Field(
        default=1, ge=1, le=5, description="Replicas of every stream and bucket (3 on a cluster)."
    )
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

    # --- daemons (bus/stateful) ---
    # Whole seconds: the server's per-message TTL has one-second resolution. A standby takes over
    # within about this long after the active instance dies (it renews every third of it).
    daemon_lease_seconds: int = Field(
        default=3,
        ge=1,
        le=300,
        description="How long a daemon agent's active instance holds its lease without renewing it.",
    )

    # --- audit ---
    audit_retention_days: float = Field(
        default=365.0,
        gt=0,
        description="How long the audit stream keeps its records (approval requests, decisions, refusals, "
        "expiries); nobody can delete or purge them before.",
    )

    # --- local runs ---
    home: Path = Field(default=Path(".mesh"), description="Folder for the embedded server's data and run files.")
    log_level: str = Field(default="INFO")
    log_format: Literal["console", "json"] = Field(default="console")

    @property
    def nats_servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    @property
    def subjects(self) -> Subjects:
        # imported lazily to keep settings import-light
        from contracts.subjects import Subjects

        return Subjects(self.namespace)

    def as_env(self) -> dict[str, str]:
        """The settings that were set explicitly, as MESH_* variables for child processes.

        Secrets are left out on purpose: children inherit them from the environment, and they
        must never be written into a run file or a log. So is this process's NATS identity:
        each child has its own.
        """
        env: dict[str, str] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            # any SecretStr too (a webhook URL with its token): written out, it would read `**********`
            if name.startswith("anthropic_") or name in _OWN_IDENTITY or value is None or isinstance(value, SecretStr):
                continue
            if isinstance(value, list):
                value = ",".join(value)
            elif isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items())
            env[f"MESH_{name.upper()}"] = str(value)
        return env


_OWN_IDENTITY = {"nats_credentials", "nats_identity"}
