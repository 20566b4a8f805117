"""`mesh bench llm`: the mesh's reviews against a provider limit, on the fake Anthropic server.

The fake (in this process) plays a provider with a per-model request limit, a latency and a share
of 529s. An embedded nats-server, the reviewers and the coordinator run as real processes, the
reviewers reaching the fake through ANTHROPIC_BASE_URL, each gated at its share of the limit
(limit ÷ reviewers). Proposals are published at the pace that offers `load` × the limit in
reviews per minute; every review is timed from its proposal's publish to its arrival.

Reported: reviews per minute as a share of the limit, 429s received (and any that reached a
review), failed reviews (never published), p50/p99 review latency, tokens and cost per review
with prompt caching as measured and without it (the same tokens billed as plain input), and how
often each step of the fallback chain answered, with the reasons earlier steps gave way. With a
cheap tier model, the fake makes that model's confidence vary (0.6–1.0), and the report shows how
many reviews it settled alone and how many it escalated.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from bus.client import MeshClient
from bus.ops.launcher import start_mesh
from bus.ops.settings import MeshSettings
from contracts.releases import ReleaseProposed
from contracts.reviews import AttemptStatus, ReviewSubmitted
from services.llm.chain import parse_chain
from services.llm.fake import FakeAnthropic
from services.llm.pricing import price_table

SAMPLES = files("contracts") / "samples"


@dataclass
class LLMBenchPlan:
    rpm: float = 300.0  # the provider's limit, requests per minute per model
    tpm: float | None = None  # the provider's input-token limit per minute per model (None: none)
    latency: float = 1.5  # seconds per good answer
    overloaded: float = 0.10  # share of calls answered 529
    duration: float = 60.0  # seconds of load (unless `proposals` is given)
    proposals: int | None = None
    load: float = 1.0  # offered reviews per minute, as a share of the limit
    reviewers: tuple[str, ...] = ("security", "compliance")
    chain: str = "claude-sonnet-4-6,claude-haiku-4-5,offline"
    tier: str = ""
    prompt_caching: bool = True
    workers: int = 16

    @property
    def interval(self) -> float:
        """Seconds between proposals: each proposal makes one review per reviewer."""
        return 60.0 / (self.rpm * self.load / len(self.reviewers))

    @property
    def count(self) -> int:
        return self.proposals if self.proposals is not None else max(1, int(self.duration / self.interval))


@dataclass
class Timed:
    review: ReviewSubmitted
    latency: float
    arrived: float


@dataclass
class LLMBenchResult:
    plan: LLMBenchPlan
    proposals: int
    reviews: list[Timed] = field(default_factory=list)
    fake_stats: dict = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def expected(self) -> int:
        return self.proposals * len(self.plan.reviewers)

    @property
    def failed(self) -> int:
        return self.expected - len(self.reviews)

    @property
    def reviews_per_minute(self) -> float:
        arrivals = sorted(t.arrived for t in self.reviews)
        if len(arrivals) < 2 or arrivals[-1] == arrivals[0]:
            return 0.0
        return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) * 60

    @property
    def share_of_limit(self) -> float:
        return self.reviews_per_minute / self.plan.rpm

    @property
    def rate_limited(self) -> int:
        return int(self.fake_stats.get("by_status", {}).get("429", 0))

    @property
    def rate_limited_reviews(self) -> int:
        """Reviews where a 429 made a model step give up."""
        return sum(
            any("429" in a.reason for a in t.review.attempts if a.status is not AttemptStatus.ANSWERED)
            for t in self.reviews
        )

    def percentile(self, q: float) -> float:
        values = sorted(t.latency for t in self.reviews)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]

    def steps(self) -> Counter[str]:
        """Which step of the chain answered: `1 claude-sonnet-4-6`, `2 claude-haiku-4-5`, `offline`."""
        order = parse_chain(self.plan.chain)
        used: Counter[str] = Counter()
        for t in self.reviews:
            answered = next((a for a in t.review.attempts if a.status is AttemptStatus.ANSWERED), None)
            model = answered.model if answered else t.review.model
            if self.plan.tier and answered is t.review.attempts[0] and model == self.plan.tier:
                used[f"tier {model}"] += 1
            elif model == "offline-rules":
                used["offline"] += 1
            else:
                position = order.index(model) + 1 if model in order else 0
                used[f"{position} {model}" if position else f"tier {model}"] += 1
        return used

    def tiering(self) -> tuple[int, int]:
        """(reviews the cheap tier answered, reviews it escalated to a stronger model)."""
        tier = self.plan.tier
        answered = sum(
            bool(t.review.attempts)
            and t.review.attempts[0].model == tier
            and t.review.attempts[0].status is AttemptStatus.ANSWERED
            for t in self.reviews
        )
        escalated = sum(any(a.status is AttemptStatus.ESCALATED for a in t.review.attempts) for t in self.reviews)
        return answered, escalated

    def skip_reasons(self) -> Counter[str]:
        reasons: Counter[str] = Counter()
        for t in self.reviews:
            for a in t.review.attempts:
                if a.status is not AttemptStatus.ANSWERED:
                    reasons[f"{a.model} {a.status.value}: {_short(a.reason)}"] += 1
        return reasons

    def cost_per_review(self) -> tuple[float, float]:
        """Mean USD per review as measured, and with every token billed as uncached input."""
        prices = price_table()
        measured = [t.review.cost_usd for t in self.reviews]
        uncached = [
            sum(prices.price(a.model).cost_uncached(a.tokens) for a in t.review.attempts if a.model != "offline-rules")
            for t in self.reviews
        ]
        return _mean(measured), _mean(uncached)

    def tokens_per_review(self) -> dict[str, float]:
        fields = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
        return {f: _mean([getattr(t.review.tokens, f) for t in self.reviews]) for f in fields}

    def cost_per_agent(self) -> dict[str, float]:
        per: Counter[str] = Counter()
        for t in self.reviews:
            per[t.review.reviewer] += t.review.cost_usd
        return dict(per)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _short(reason: str) -> str:
    markers = ("HTTP 529", "HTTP 500", "429", "timed out", "circuit", "budget", "deadline", "invalid", "did not call")
    for marker in markers:
        if marker in reason:
            return marker
    if reason.startswith("confidence"):
        return "confidence below the threshold"
    return reason[:40]


def _proposal(index: int, run: str) -> ReleaseProposed:
    name = "release_secret" if index % 5 == 4 else "release_clean"  # one in five carries a planted key
    data = json.loads((SAMPLES / f"{name}.json").read_text())
    data["release_id"] = f"{run}-{index:05d}"
    return ReleaseProposed.model_validate(data)


async def _drive(settings: MeshSettings, plan: LLMBenchPlan, run: str, progress) -> tuple[int, list[Timed], float]:
    published: dict[str, float] = {}
    arrived: list[Timed] = []
    expected = plan.count * len(plan.reviewers)
    done = asyncio.Event()
    async with await MeshClient.connect(settings, name="bench-llm") as client:

        async def on_review(msg) -> None:
            review = ReviewSubmitted.model_validate_json(msg.data)
            sent = published.get(review.release_id)
            if sent is None:
                return
            now = time.perf_counter()
            arrived.append(Timed(review, now - sent, now))
            progress(len(arrived), expected)
            if len(arrived) >= expected:
                done.set()

        sub = await client.nc.subscribe(settings.subjects.reviews, cb=on_review)
        started = time.perf_counter()
        for index in range(plan.count):
            await asyncio.sleep(max(0.0, started + index * plan.interval - time.perf_counter()))
            proposal = _proposal(index, run)
            published[proposal.release_id] = time.perf_counter()
            await client.propose(proposal)
        try:
            await asyncio.wait_for(done.wait(), timeout=settings.deadline_seconds + 15)
        except TimeoutError:
            pass
        await sub.unsubscribe()
        return plan.count, arrived, time.perf_counter() - started


def run_llm_bench(
    settings: MeshSettings, plan: LLMBenchPlan, *, home: Path, progress=lambda done, total: None
) -> LLMBenchResult:
    """Start the fake provider and the mesh, offer the load, and gather the figures."""
    with FakeAnthropic(seed=42) as api:
        api.profile(latency=plan.latency, jitter=0.2, overloaded_rate=plan.overloaded)
        api.limit(rpm=plan.rpm, tpm=plan.tpm)
        if plan.tier:  # a cheap model is sure of itself only some of the time
            api.profile(plan.tier, confidence=(0.6, 1.0))
        share = len(plan.reviewers)  # each reviewer process is gated at its share of the limits
        env = {
            "MESH_ANTHROPIC_API_KEY": "sk-bench-fake",
            "MESH_ANTHROPIC_BASE_URL": api.url,
            "MESH_LLM_CHAIN": plan.chain,
            "MESH_LLM_TIER_MODEL": plan.tier,
            "MESH_LLM_RPM": f"{plan.rpm / share:g}",
            "MESH_LLM_TPM": f"{(plan.tpm or 1e9) / share:g}",
            "MESH_LLM_MAX_IN_FLIGHT": str(plan.workers * 2),
            "MESH_LLM_PROMPT_CACHING": str(plan.prompt_caching).lower(),
            "MESH_WORKERS": str(plan.workers),
            "MESH_REVIEWERS": ",".join(plan.reviewers),
            "MESH_REVIEWER_DISCOVERY": "false",
            "MESH_LOG_LEVEL": "WARNING",
        }
        run = f"llmb{int(time.time())}"
        mesh = start_mesh(
            settings, names=[*plan.reviewers, "coordinator"], home=home, embedded=True, fresh=True, env=env
        )
        try:
            proposals, reviews, wall = asyncio.run(_drive(mesh.settings, plan, run, progress))
        finally:
            mesh.stop()
        return LLMBenchResult(plan, proposals, reviews, api.stats(), wall)
