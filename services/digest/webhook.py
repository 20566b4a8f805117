"""The digest's webhook delivery: the mesh's shared outbound webhook sender (bus/webhooks_out.py)."""

from bus.webhooks_out import (
    MIN_ATTEMPT_SECONDS,
    DeliveryResult,
    RetryPolicy,
    post_webhook,
    skipped,
)

__all__ = ["MIN_ATTEMPT_SECONDS", "DeliveryResult", "RetryPolicy", "post_webhook", "skipped"]
