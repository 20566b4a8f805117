"""`mesh publish --wait` for a release the reviewers escalate when nobody may approve it: the
escalation is the outcome, and the command exits 3 (real reviewers, coordinator and CLI)."""

from __future__ import annotations

import asyncio
import json
import random
import uuid

from bus.ops.chaos.proposals import release
from contracts.outcomes import RoundDecided
from tests.bus.ops.test_cli import mesh
from tests.e2e.support import stream_messages


async def test_publish_wait_exits_3_for_an_escalated_outcome(settings, launch):
    """No approvers are configured, so compliance's `needs_human` on a customer-facing release
    without a CHANGELOG entry (CMP010) ends the round as escalated: `mesh publish --wait --json`
    prints that outcome — not an approval to wait for — and exits 3; the stream holds the same."""
    await asyncio.to_thread(launch, settings, ["security", "compliance", "coordinator"])
    proposal = release("unlogged", f"rel-esc-{uuid.uuid4().hex[:8]}", random.Random(0))

    result = await asyncio.to_thread(
        mesh,
        "publish",
        "release.proposed",
        "-",
        "--wait",
        "30",
        "--json",
        settings=settings,
        stdin=proposal.model_dump_json(),
    )

    assert result.returncode == 3, result.stdout + result.stderr
    printed = RoundDecided.model_validate(json.loads(result.stdout))
    assert printed.release_id == proposal.release_id and printed.outcome == "escalated"
    assert printed.approval is None and printed.human_decisions == []  # final: nobody was asked
    verdicts = {r.reviewer: r.verdict.value for r in printed.reviews}
    assert verdicts == {"security": "approve", "compliance": "needs_human"}
    assert "CMP010" in {f.rule for r in printed.reviews for f in r.findings}
    s = settings.subjects
    (stored,) = await stream_messages(settings.nats_url, s.outcomes_stream, s.outcomes_of(proposal.release_id))
    assert RoundDecided.model_validate_json(stored).outcome == "escalated"
