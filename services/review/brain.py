"""A reviewer's brain: the offline rules, or a walk along the agent's model chain backed by them.

`make_brain` returns the offline rules reviewer when no API key is set (or the chain is just
`offline`), and a `ChainBrain` otherwise. For each release a ChainBrain:

1. runs the offline rules first (off the event loop, within `MESH_REVIEW_BUDGET_SECONDS`): they
   are the last step of every chain, the guardrail on every model answer, and the risk signal
   for tiering; rules that ran out of time mean no model may approve (`hold_incomplete`);
2. plans the steps: the agent's chain (`MESH_LLM_CHAINS` / `MESH_LLM_CHAIN`), or — for a small
   release in which the rules found nothing high or critical — the cheap tier model first,
   escalating to the chain when its confidence is below `MESH_LLM_TIER_MIN_CONFIDENCE`;
3. walks the steps with one round budget and one deadline (below); the first accepted answer
   wins, and every rule finding at or above `MESH_REVIEW_GUARD_SEVERITY` (default high) stands
   whatever the model said, with the verdict it calls for (`guard.uphold`);
4. falls back to the rules when no model answered, and records every step in `attempts`.

In a trace: the rules' `review.rules` span, then the chain's `llm.chain` with a `chat {model}`
span per call and a `fallback` event per step that gave no accepted answer (services/llm/spans.py).

The deadline: the round closes `MESH_DEADLINE_SECONDS` after the proposal's `occurred_at`
(the coordinator counts from when it opened the round, which is no earlier), so model calls must
end `MESH_LLM_DEADLINE_MARGIN_SECONDS` before that. A proposal without `occurred_at` gets the
time it was parsed; a clock running ahead never buys more than `MESH_DEADLINE_SECONDS`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from contracts.redaction import redact
from contracts.releases import ReleaseProposed
from contracts.reviews import AttemptStatus, Finding, ModelAttempt, Severity, Verdict
from services.llm.budget import RoundBudget
from services.llm.chain import OFFLINE, ChainResult, Step, run_chain
from services.review.assessment import Assessment, Brain
from services.review.guard import uphold
from services.review.offline import INCOMPLETE, OfflineReviewer
from services.review.offline import MODEL as OFFLINE_MODEL
from services.review.rules import load_rules
from services.review.settings import ReviewerSettings

if TYPE_CHECKING:  # the SDK costs seconds to import: only a process with a key pays for it
    from services.llm.client import LLMClient
    from services.review.model_reviewer import ModelReviewer

log = structlog.get_logger(__name__)
_RISKY = (Severity.CRITICAL, Severity.HIGH)


@dataclass(frozen=True)
class Tiering:
    """Ask `model` first for prompts up to `max_chars`; escalate below `min_confidence`."""

    model: str
    max_chars: int = 6000
    min_confidence: float = 0.8

    def judge(self, answer: Assessment) -> str | None:
        if answer.confidence < self.min_confidence:
            return f"confidence {answer.confidence:g} is below {self.min_confidence:g}; a stronger model was asked"
        return None


class ChainBrain:
    """A `Brain` that asks the models of a fallback chain in order, backed by the offline rules."""

    def __init__(
        self,
        *,
        reviewer: ModelReviewer,
        offline: OfflineReviewer,
        chain: list[str],
        tiering: Tiering | None = None,
        budget_usd: float | None = None,
        budget_tokens: int | None = None,
        deadline_seconds: float = 30.0,
        margin_seconds: float = 2.0,
        guard_severity: Severity = Severity.HIGH,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        tracer_provider: TracerProvider | None = None,
        context: Callable[[ReleaseProposed], Awaitable[str]] | None = None,
    ) -> None:
        self.reviewer = reviewer
        # More for the model to read besides the release (the steward's history of its service):
        # a delimited block of data, "" when there is none; never for the rules.
        self.context = context
        self.offline = offline
        self.models = [model for model in chain if model != OFFLINE]
        self.tiering = tiering
        self.budget_usd = budget_usd
        self.budget_tokens = budget_tokens
        self.deadline_seconds = deadline_seconds
        self.margin_seconds = margin_seconds
        self.guard_severity = guard_severity
        self.wall_clock = wall_clock
        self.clock = clock
        self.tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)

    def effect(self, finding: Finding) -> Verdict:
        """The verdict a rule finding calls for (its rule's, from the offline rules)."""
        return self.offline.rules.effect_of(finding.rule, finding.severity)

    def deadline_for(self, proposal: ReleaseProposed) -> float:
        """When model calls must be done, on `clock`: the round's deadline less the margin."""
        closes = proposal.occurred_at.timestamp() + self.deadline_seconds
        remaining = min(closes - self.wall_clock(), self.deadline_seconds) - self.margin_seconds
        return self.clock() + remaining

    def plan(self, prompt: str, rules: Assessment) -> list[Step[Assessment]]:
        """The chain, or the cheap tier first when the release is small and the rules saw no risk."""
        tier = self.tiering
        risky = any(finding.severity in _RISKY for finding in rules.findings)
        if tier is None or len(prompt) > tier.max_chars or risky:
            return [Step(model) for model in self.models]
        return [Step(tier.model, judge=tier.judge), *(Step(m) for m in self.models if m != tier.model)]

    async def assess(self, proposal: ReleaseProposed) -> Assessment:
        """The first accepted model answer (serious rule findings always standing), else the rules'."""
        rules = await self.offline.assess(proposal)
        prompt = self.reviewer.render(proposal)
        if self.context is not None and (extra := await self.context(proposal)):
            prompt = f"{prompt}\n\n{extra}"
        steps = self.plan(prompt, rules)
        budget = RoundBudget(max_usd=self.budget_usd, max_tokens=self.budget_tokens)
        if len(prompt) > self.reviewer.max_prompt_chars:
            reason = f"the proposal is over {self.reviewer.max_prompt_chars} characters"
            trace.get_current_span().add_event("llm.skipped", {"mesh.llm.reason": reason})
            result = ChainResult(
                attempts=[ModelAttempt(model=s.model, status=AttemptStatus.SKIPPED, reason=reason) for s in steps]
            )
        else:
            deadline = self.deadline_for(proposal)

            async def ask(model, meter):
                return await self.reviewer.ask(model, prompt, deadline=deadline, budget=budget, meter=meter)

            result = await run_chain(steps, ask, clock=self.clock, agent=self.reviewer.focus, tracer=self.tracer)
        if result.answer is None:
            why = " ".join(f"Model {a.model} {a.status.value}: {a.reason}." for a in result.attempts)
            log.warning("review.offline_fallback", focus=self.offline.name, release_id=proposal.release_id, why=why)
            answer = dataclasses.replace(rules, rationale=f"{why} {rules.rationale}".strip())
            attempts = [*result.attempts, ModelAttempt(model=OFFLINE_MODEL, status=AttemptStatus.ANSWERED)]
        else:
            guarded = uphold(result.answer, rules, severity=self.guard_severity, effect=self.effect)
            answer, attempts = hold_incomplete(guarded, rules), result.attempts
        return dataclasses.replace(answer, tokens=budget.spent, cost_usd=round(budget.spent_usd, 8), attempts=attempts)


def hold_incomplete(model: Assessment, rules: Assessment) -> Assessment:
    """`model`'s assessment, but never an approval when the rules ran out of time reading the release.

    A model reads a release the rules could not finish, and a planted instruction may fool it;
    what the rules could not clear goes to a human, with the rules' `INCOMPLETE` finding.
    """
    incomplete = [f for f in rules.findings if f.rule == INCOMPLETE]
    if not incomplete:
        return model
    findings = [*incomplete, *(f for f in model.findings if f.rule != INCOMPLETE)]
    if model.verdict is not Verdict.APPROVE:
        return dataclasses.replace(model, findings=findings)
    return dataclasses.replace(
        model,
        verdict=Verdict.NEEDS_HUMAN,
        confidence=rules.confidence,
        findings=findings,
        rationale=f"The offline rules ran out of time ({INCOMPLETE}), so the model's approve became needs_human. "
        f"Model said: {model.rationale}",
    )


def make_brain(
    focus: str,
    *,
    settings: ReviewerSettings,
    llm: LLMClient | None = None,
    tracer_provider: TracerProvider | None = None,
    context: Callable[[ReleaseProposed], Awaitable[str]] | None = None,
) -> Brain:
    """The brain of the `focus` reviewer (`security` or `compliance`), from `settings`.

    With an API key it asks the models of the agent's chain through `llm` — by default the
    process's one shared client — and falls back to the rules; without one it is the rules.
    Its spans go to `tracer_provider` (by default the process's). `context(proposal)` gives the
    model more to read (a delimited block of data); the rules never see it.
    """
    rules = load_rules(focus)
    offline = OfflineReviewer(
        rules, name=focus, budget_seconds=settings.review_budget_seconds, tracer_provider=tracer_provider
    )
    chain = settings.chain_for(focus)
    if not settings.anthropic_api_key or chain == [OFFLINE]:
        return offline
    from services.llm.client import shared_client
    from services.review.model_reviewer import ModelReviewer

    llm = llm or shared_client(settings)
    tiering = None
    if settings.llm_tier_model:
        tiering = Tiering(settings.llm_tier_model, settings.llm_tier_max_chars, settings.llm_tier_min_confidence)
    priced = [m for m in chain if m != OFFLINE] + ([tiering.model] if tiering else [])
    llm.prices.require(priced, used_in=f"the {focus} reviewer's chain")
    reviewer = ModelReviewer(
        llm=llm,
        focus=focus,
        rules=rules,
        max_tokens=settings.max_tokens,
        prompt_caching=settings.llm_prompt_caching,
        # Scrub secrets from the model's words whatever its focus: compliance sees diffs too.
        redact=lambda text, by_rules=load_rules("security").redact: redact(by_rules(text)),  # noqa: B008 - bound once, on purpose
    )
    return ChainBrain(
        reviewer=reviewer,
        offline=offline,
        chain=chain,
        tiering=tiering,
        budget_usd=settings.llm_round_budget_usd,
        budget_tokens=settings.llm_round_budget_tokens,
        deadline_seconds=settings.deadline_seconds,
        margin_seconds=settings.llm_deadline_margin_seconds,
        guard_severity=settings.review_guard_severity,
        tracer_provider=tracer_provider,
        context=context,
    )
