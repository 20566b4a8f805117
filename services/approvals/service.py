"""The approvals notifier: posts each new approval (`approval.requested`) and each approval about
to expire (`approval.expiring`) to a Slack-compatible webhook (`MESH_APPROVALS_WEBHOOK_URL`), with
a link to the gateway's approval page. The coordinator publishes both events.

Delivery is retried with backoff (bus/webhooks_out.py, shared with the digest) within
`MESH_APPROVALS_WEBHOOK_DEADLINE_SECONDS`; a webhook still failing then fails the message, which
is redelivered later and dead-lettered after `MESH_MAX_DELIVER` deliveries; a webhook that
refuses it (a 4xx) dead-letters it at once. A redelivery may post a notice twice; nothing is lost.

Run it alone with `mesh run approvals` (or `faststream run services.approvals.service:app`).
"""

from __future__ import annotations

import time

from nats.js.errors import BucketNotFoundError

from bus.delivery import Delivery
from bus.errors import InvalidMessage
from bus.runtime import Agent, lazy_app
from bus.webhooks_out import DeliveryStatus, RetryPolicy, post_webhook
from contracts.approvals import ApprovalExpiring, ApprovalRequested, ApprovalView
from contracts.cards import AgentInstance, AgentSkill
from services.approvals.message import slack_message
from services.approvals.settings import ApprovalsSettings

SKILL = AgentSkill(
    id="approvals.notify",
    name="Tell approvers a release waits for them",
    description="Posts each escalated release that waits for a person, and each approval about to expire, "
    "to a Slack-compatible webhook with the findings and a link to the approval page.",
    tags=["approvals", "approval.requested", "approval.expiring", "webhook"],
    examples=["Post to #release-approvals when rel-42 needs a person's approval."],
)


class Notifier:
    def __init__(self, settings: ApprovalsSettings, agent: Agent) -> None:
        self.settings = settings
        self.agent = agent
        self.policy = RetryPolicy(
            attempts=settings.approvals_webhook_attempts,
            backoff_seconds=settings.approvals_webhook_backoff_seconds,
            backoff_max_seconds=settings.approvals_webhook_backoff_max_seconds,
            timeout_seconds=settings.approvals_webhook_timeout_seconds,
        )

    async def handle_requested(self, event: ApprovalRequested, delivery: Delivery) -> None:
        await self.post(event.approval, "requested", None, delivery)

    async def handle_expiring(self, event: ApprovalExpiring, delivery: Delivery) -> None:
        await self.post(event.approval, "expiring", event.seconds_left, delivery)

    async def post(self, view: ApprovalView, kind: str, seconds_left: float | None, delivery: Delivery) -> None:
        url = self.settings.approvals_webhook_url
        if url is None:
            delivery.log.info("notice not posted: MESH_APPROVALS_WEBHOOK_URL is not set", approval=view.id, kind=kind)
            return
        base = await self.page_base()
        link = f"{base}/approvals/{view.id}" if base else None
        body = slack_message(view, kind=kind, link=link, seconds_left=seconds_left)
        deadline = time.monotonic() + self.settings.approvals_webhook_deadline_seconds
        result = await post_webhook(url.get_secret_value(), body, policy=self.policy, deadline=deadline)
        if result.status == DeliveryStatus.DELIVERED:
            delivery.log.info("notice posted", approval=view.id, kind=kind, attempts=result.attempts)
            return
        status = result.http_status or 0
        if 400 <= status < 500 and status not in (408, 429):
            raise InvalidMessage(f"the approvals webhook refused the {kind} notice: {result.detail}")
        raise RuntimeError(f"the {kind} notice of approval {view.id} was not delivered: {result.detail}")

    async def page_base(self) -> str | None:
        """The gateway's public URL, or a live gateway instance's (from the registry)."""
        if self.settings.gateway_public_url:
            return self.settings.gateway_public_url.rstrip("/")
        js = self.agent.broker.connection.jetstream()
        try:
            kv = await js.key_value(self.settings.subjects.instances_bucket)
        except BucketNotFoundError:
            return None
        watcher = await kv.watch("gateway.*", ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:
                    return None
                if entry.value:
                    return AgentInstance.model_validate_json(entry.value).url.rstrip("/")
        finally:
            await watcher.stop()
        return None


def build(settings: ApprovalsSettings) -> Agent:
    if not isinstance(settings, ApprovalsSettings):  # the operator tools pass every layer's settings at once
        settings = ApprovalsSettings(**settings.model_dump())
    agent = Agent(
        "approvals",
        settings=settings,
        description="Tells approvers, at a webhook, that an escalated release waits for their decision.",
        skills=[SKILL],
    )
    notifier = Notifier(settings, agent)
    s = settings.subjects
    agent.reads_bucket(s.instances_bucket)  # a live gateway's URL, when MESH_GATEWAY_PUBLIC_URL is unset
    agent.consumes(
        stream=s.approvals_stream,
        subject=s.approvals_requested,
        model=ApprovalRequested,
        durable="approvals-requested",
        description="approvals: post each new approval to the webhook",
    )(notifier.handle_requested)
    agent.consumes(
        stream=s.approvals_stream,
        subject=s.approvals_expiring,
        model=ApprovalExpiring,
        durable="approvals-expiring",
        description="approvals: post each approval about to expire to the webhook",
    )(notifier.handle_expiring)
    return agent


__getattr__ = lazy_app(
    build, settings_type=ApprovalsSettings
)  # `app`, for `faststream run services.approvals.service:app`
