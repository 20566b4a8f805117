"""`mesh bench llm`: its figures from reviews (pure), and a tiny run end to end."""

import os
import subprocess
import sys

import pytest

from bus.ops.bench.llm import LLMBenchPlan, LLMBenchResult, Timed
from contracts.reviews import AttemptStatus, ModelAttempt, ReviewSubmitted, TokenUsage, Verdict


def review(model, attempts, cost=0.01, reviewer="security"):
    return ReviewSubmitted(
        release_id="r",
        reviewer=reviewer,
        verdict=Verdict.APPROVE,
        confidence=0.9,
        rationale="ok",
        model=model,
        attempts=attempts,
        cost_usd=cost,
        tokens=TokenUsage(input_tokens=100, cache_read_input_tokens=1000),
    )


def test_the_figures_count_steps_reasons_latency_and_cost():
    """Answering steps, pass-over reasons, 429s reaching reviews, percentiles and cost with/without caching."""
    tokens = TokenUsage(input_tokens=100, cache_read_input_tokens=1000)
    sonnet = ModelAttempt(model="claude-sonnet-4-6", status=AttemptStatus.ANSWERED, tokens=tokens)
    overloaded = ModelAttempt(
        model="claude-sonnet-4-6", status=AttemptStatus.FAILED, reason="the API answered HTTP 529"
    )
    haiku = ModelAttempt(model="claude-haiku-4-5", status=AttemptStatus.ANSWERED, tokens=tokens)
    limited = ModelAttempt(model="claude-haiku-4-5", status=AttemptStatus.FAILED, reason="rate limited (HTTP 429)")
    offline = ModelAttempt(model="offline-rules", status=AttemptStatus.ANSWERED)
    plan = LLMBenchPlan(rpm=60, proposals=2)
    result = LLMBenchResult(
        plan,
        proposals=2,
        wall_seconds=3,
        reviews=[
            Timed(review("claude-sonnet-4-6", [sonnet]), latency=1.0, arrived=10.0),
            Timed(review("claude-haiku-4-5", [overloaded, haiku]), latency=2.0, arrived=11.0),
            Timed(
                review("offline-rules", [overloaded, limited, offline], cost=0.0, reviewer="compliance"),
                latency=3.0,
                arrived=12.0,
            ),
        ],
    )
    assert result.expected == 4 and result.failed == 1
    assert result.reviews_per_minute == pytest.approx(60) and result.share_of_limit == pytest.approx(1.0)
    assert result.steps() == {"1 claude-sonnet-4-6": 1, "2 claude-haiku-4-5": 1, "offline": 1}
    assert result.skip_reasons()["claude-sonnet-4-6 failed: HTTP 529"] == 2
    assert result.rate_limited_reviews == 1
    assert (result.percentile(50), result.percentile(99)) == (2.0, 3.0)
    measured, uncached = result.cost_per_review()
    assert measured == pytest.approx(0.02 / 3)
    assert uncached == pytest.approx((1100 * 3 + 1100 * 1) / 1e6 / 3)
    assert result.cost_per_agent() == {"security": pytest.approx(0.02), "compliance": 0.0}
    assert plan.interval == pytest.approx(2.0)  # 60 reviews/min from 2 reviewers: a proposal every 2 s


def test_a_tiny_run_prints_every_figure(tmp_path):
    """`mesh bench llm --proposals 3` runs the fake, NATS and the services, and prints each figure."""
    env = {**os.environ, "MESH_HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", "bench", "llm", "--proposals", "3", "--latency", "0.05", "--rpm", "600"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for figure in (
        "reviews/min",
        "429s received",
        "failed reviews            0",
        "review latency      p50",
        "tokens per review",
        "without (same tokens",
        "answering step",
        "provider saw",
    ):
        assert figure in run.stdout, run.stdout
