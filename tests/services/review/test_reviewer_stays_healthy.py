"""A reviewer at work on a release that stalls its rules still answers /healthz, against a real
nats-server and over real HTTP, and its review says needs_human with the reason."""

from __future__ import annotations

import asyncio
import time

import httpx
import nats
import pytest
import uvicorn

from bus.ops.embedded import free_port
from contracts.cards import AgentSkill
from contracts.reviews import ReviewSubmitted, Verdict
from services.review.offline import INCOMPLETE, OfflineReviewer
from services.review.reviewer import build_reviewer
from services.review.rules import load_rules
from tests.services.review.test_review_budget import SLOW_RULES, STALLING_LINE, release


@pytest.mark.timeout(60)
async def test_healthz_answers_while_the_reviewer_works_on_a_pathological_release(make_settings, tmp_path):
    """While the security reviewer spends its whole 5 s budget on one line, /healthz answers in
    well under that, every time; then the review arrives: needs_human with REV001."""
    settings = make_settings(http_port=free_port())
    (tmp_path / "slow.toml").write_text(SLOW_RULES, encoding="utf-8")
    rules = load_rules("slow", tmp_path / "slow.toml")
    skill = AgentSkill(id="review.security", name="Security review", description="test", tags=["review"])
    agent = build_reviewer(
        "security",
        settings=settings,
        description="test",
        skill=skill,
        brain=OfflineReviewer(rules, name="security", budget_seconds=5.0),
    )
    server = uvicorn.Server(
        uvicorn.Config(agent.build_app(), host="127.0.0.1", port=settings.http_port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    nc = await nats.connect(settings.nats_url)
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        reviews = await nc.subscribe(settings.subjects.review_submitted("security"))
        await nc.jetstream().publish(
            settings.subjects.release_proposed, release(STALLING_LINE).model_dump_json().encode()
        )
        while agent.in_flight == 0:
            await asyncio.sleep(0.01)

        answered_in: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as http:
            while agent.in_flight and len(answered_in) < 10:
                started = time.perf_counter()
                response = await http.get("/healthz", timeout=2.0)
                answered_in.append(time.perf_counter() - started)
                assert response.status_code == 200
                await asyncio.sleep(0.2)

        review = ReviewSubmitted.model_validate_json((await reviews.next_msg(timeout=10)).data)
    finally:
        await nc.close()
        server.should_exit = True
        await serving

    # a loop blocked by the rules would hold /healthz for the whole 5 s budget; quiet, each answer
    # takes milliseconds, and 2 s is the margin for a loaded 2-core machine
    assert len(answered_in) >= 5 and max(answered_in) < 2.0, answered_in
    assert review.verdict is Verdict.NEEDS_HUMAN
    assert [f.rule for f in review.findings] == [INCOMPLETE]
