"""Asking one model for a review, through the process's shared LLM client.

`ModelReviewer.ask(model, …)` returns that model's validated assessment or raises
ModelUnavailable; it never falls back by itself — walking the chain is the brain's job.
Whatever the model writes is scrubbed of secrets before it goes anywhere.
"""

from __future__ import annotations

from collections.abc import Callable

from contracts.releases import ReleaseProposed
from services.llm.budget import Meter, RoundBudget
from services.llm.client import LLMClient
from services.llm.structured import ask_for_tool
from services.review.assessment import Assessment
from services.review.prompt import SubmittedReview, render_proposal, review_request
from services.review.rules import RuleSet


class ModelReviewer:
    """The `focus` reviewer's prompt and tool, ready to put to any model of its chain."""

    def __init__(
        self,
        *,
        llm: LLMClient,
        focus: str,
        rules: RuleSet,
        max_tokens: int = 2048,
        prompt_caching: bool = True,
        redact: Callable[[str], str] | None = None,
        max_prompt_chars: int = 400_000,
    ) -> None:
        self.llm = llm
        self.focus = focus
        self.request = review_request(focus, rules, max_tokens=max_tokens, cache=prompt_caching)
        self.redact = redact or rules.redact
        self.max_prompt_chars = max_prompt_chars

    def render(self, proposal: ReleaseProposed) -> str:
        return render_proposal(proposal)

    async def ask(self, model: str, prompt: str, *, deadline: float, budget: RoundBudget, meter: Meter) -> Assessment:
        """`model`'s review of the rendered proposal `prompt`; raises ModelUnavailable."""
        review, response = await ask_for_tool(
            self.llm,
            model=model,
            request=self.request,
            prompt=prompt,
            schema=SubmittedReview,
            deadline=deadline,
            budget=budget,
            meter=meter,
            agent=self.focus,
        )
        return Assessment(
            verdict=review.verdict,
            confidence=review.confidence,
            # The model saw the diff, so it may quote a secret despite being told not to.
            rationale=self.redact(review.rationale),
            findings=[f.model_copy(update={"message": self.redact(f.message)}) for f in review.findings],
            model=response.model,
            tokens=meter.tokens,
            cost_usd=meter.cost_usd,
        )
