"""The digest's settings (`MESH_DIGEST_*`), over the LLM layer's: when it runs, what window it
covers, and where and how persistently it delivers.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from bus.scheduling.cron import Cron, parse_every, zone
from services.llm.settings import LLMSettings

RESERVE_SECONDS = 5.0  # of the handler's time, kept for publishing the records after the webhook


class DigestSettings(LLMSettings):
    """What the digest agent reads besides the bus's and the LLM layer's settings."""

    digest_cron: str = Field(
        default="0 0 9 * * *",
        description="When the digest runs: a cron expression with seconds (`sec min hour day month weekday`), "
        "in MESH_DIGEST_TIME_ZONE. Daily at 09:00 by default.",
    )
    digest_every: str = Field(
        default="",
        description="Run every this long instead (`6h`, `30m`, `1s`); empty: MESH_DIGEST_CRON.",
        examples=["6h"],
    )
    digest_time_zone: str = Field(default="UTC", description="IANA time zone of the cron expression.")
    digest_window_seconds: float = Field(
        default=24 * 3600.0, gt=0, description="What each digest covers: this long, up to the tick's scheduled time."
    )
    digest_top_findings: int = Field(
        default=5, ge=1, le=50, description="Findings (rule ids) listed, most frequent first."
    )
    digest_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack-compatible incoming webhook the digest is posted to (`https://hooks.slack.com/services/…`); "
        "unset: delivery is skipped (the digest is still published on the bus).",
    )
    digest_webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one webhook request.")
    digest_webhook_attempts: int = Field(
        default=5, ge=1, le=20, description="Webhook requests per digest at most (5xx, 429, timeouts are retried)."
    )
    digest_webhook_backoff_seconds: float = Field(default=1.0, gt=0, description="First wait before a retry.")
    digest_webhook_backoff_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait between retries (`Retry-After` wins, within the deadline)."
    )
    digest_deadline_seconds: float = Field(
        default=90.0,
        gt=0,
        description="A tick is done within this long (reading, summary, webhook retries included), and within "
        "MESH_HANDLER_TIMEOUT_SECONDS; a webhook still failing then is recorded as failed.",
    )
    digest_summary_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long the model may take to write the summary; then the digest goes without.",
    )

    # checked here, so a bad value fails at startup naming its variable, not at the first firing
    @field_validator("digest_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("digest_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        Cron.parse(value)
        return value

    @field_validator("digest_every")
    @classmethod
    def _every(cls, value: str) -> str:
        if value.strip():
            parse_every(value)
        return value

    @property
    def tick_seconds(self) -> float:
        """How long one tick may take: the digest's deadline, within the handler's timeout."""
        return max(1.0, min(self.digest_deadline_seconds, self.handler_timeout_seconds - RESERVE_SECONDS))
