"""The approvals notifier's settings (`MESH_APPROVALS_*`), over the bus's: where it posts, and
how persistently."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bus.settings import BusSettings


class ApprovalsSettings(BusSettings):
    """What the approvals notifier reads besides the bus's settings."""

    approvals_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack-compatible incoming webhook that new approvals and approvals about to expire are "
        "posted to; unset: nothing is posted (the events are still on the bus).",
    )
    gateway_public_url: str | None = Field(
        default=None,
        description="Where people reach the gateway (`https://mesh.example.com`): the notices link to "
        "`<it>/approvals/<id>`. Unset: a live gateway instance's URL from the registry.",
    )
    approvals_webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one request.")
    approvals_webhook_attempts: int = Field(
        default=5, ge=1, le=20, description="Requests per notice per delivery at most (5xx, 429, timeouts are retried)."
    )
    approvals_webhook_backoff_seconds: float = Field(default=1.0, gt=0, description="First wait before a retry.")
    approvals_webhook_backoff_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait between retries (`Retry-After` wins, within the deadline)."
    )
    approvals_webhook_deadline_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long one delivery of a notice keeps trying; then the message is redelivered later "
        "(and dead-lettered after MESH_MAX_DELIVER deliveries).",
    )
