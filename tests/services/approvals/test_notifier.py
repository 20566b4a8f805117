"""services/approvals: the notices people get at the webhook — what they say, and how they are
delivered (against a real local HTTP receiver)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bus.errors import InvalidMessage
from contracts.approvals import ApprovalFinding, ApprovalView
from services.approvals.message import slack_message
from services.approvals.service import Notifier
from services.approvals.settings import ApprovalsSettings
from tests.services.digest.receiver import WebhookReceiver

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
VIEW = ApprovalView(
    id="rel-42.3812ed07d3c8",
    release_id="rel-42",
    revision="3812ed07d3c8" + "0" * 52,
    service="payments-api",
    version="2.4.0",
    title="Add refund endpoint",
    state="pending",
    reason="Escalated under policy all: compliance asked for a human (1 finding); security approved.",
    requested_at=AT,
    deadline=AT + timedelta(hours=24),
    approvers=["key:alice", "key:bob"],
    findings=[
        ApprovalFinding(
            reviewer="compliance", rule="CMP010", severity="medium", path="CHANGELOG.md", line=3, message="No entry."
        )
    ],
)


def test_a_new_approval_notice_names_the_release_the_findings_who_may_decide_and_links_the_page():
    body = slack_message(VIEW, kind="requested", link="https://mesh.example.com/approvals/rel-42.3812ed07d3c8")

    assert body["text"].startswith("Approval needed: rel-42 (payments-api 2.4.0)")
    assert "<https://mesh.example.com/approvals/rel-42.3812ed07d3c8|Decide on the approval page>" in body["text"]
    text = "\n".join(block["text"]["text"] for block in body["blocks"] if "text" in block)
    assert "key:alice, key:bob" in text and "CMP010 CHANGELOG.md:3 (compliance)" in text
    assert "compliance asked for a human" in text


def test_an_expiring_notice_says_how_long_is_left_and_what_happens_then():
    body = slack_message(VIEW, kind="expiring", link=None, seconds_left=4 * 3600)

    assert body["text"].startswith("Approval about to expire: rel-42 (payments-api 2.4.0): 4 h left, then block")
    assert "approval rel-42.3812ed07d3c8" in body["text"]  # no link known: the id


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, event: str, **fields) -> None:
        self.lines.append(event)


class Delivery:
    def __init__(self) -> None:
        self.log = Log()


def notifier(url: str | None) -> Notifier:
    settings = ApprovalsSettings(
        approvals_webhook_url=url,
        gateway_public_url="https://mesh.example.com/",
        approvals_webhook_backoff_seconds=0.01,
        approvals_webhook_backoff_max_seconds=0.02,
        approvals_webhook_deadline_seconds=5,
    )
    return Notifier(settings, agent=None)


async def test_a_failing_webhook_is_retried_until_it_takes_the_notice():
    with WebhookReceiver(answers=[503, 429]) as hook:
        delivery = Delivery()
        await notifier(hook.url).post(VIEW, "requested", None, delivery)

    assert len(hook.bodies) == 3 and delivery.log.lines == ["notice posted"]
    assert "https://mesh.example.com/approvals/rel-42.3812ed07d3c8" in hook.bodies[-1]["text"]


async def test_a_webhook_that_refuses_the_notice_dead_letters_it():
    """A 404 will not change by sending again: the message is invalid for it (dead-lettered, with why)."""
    with WebhookReceiver(always=404) as hook, pytest.raises(InvalidMessage, match="refused"):
        await notifier(hook.url).post(VIEW, "requested", None, Delivery())


async def test_without_a_webhook_nothing_is_posted():
    delivery = Delivery()
    await notifier(None).post(VIEW, "expiring", 60.0, delivery)

    assert delivery.log.lines == ["notice not posted: MESH_APPROVALS_WEBHOOK_URL is not set"]
