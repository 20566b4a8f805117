"""A per-round budget: what one reviewer may spend on one release, in USD and/or tokens.

Semantics (kept simple on purpose):
- The budget belongs to one reviewer's review of one release. Reviewers run in their own
  processes and answer in parallel, so a round as a whole may spend up to the budget times
  the number of reviewers; the outcome carries the sum (`RoundDecided.cost_usd`).
- Every request is charged what it actually cost, failed answers included.
- A request starts only if its *estimated* cost (the prompt, nothing assumed cached, plus up to
  1,024 output tokens) still fits in what is left; once the budget is spent (or the next request
  would overspend it), no more model calls are made for this review and the chain goes straight
  to its last step, `offline`. The one request in flight when it runs out may overshoot it.
- It lives in memory for one handling of the proposal: a redelivered proposal starts afresh.

`Meter` is the other ledger: what one step of the model chain spent, for the review's record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.reviews import TokenUsage
from services.llm.errors import BudgetExhausted


@dataclass
class RoundBudget:
    """Limits (None = unlimited) and what has been spent against them."""

    max_usd: float | None = None
    max_tokens: int | None = None
    spent_usd: float = 0.0
    spent: TokenUsage = field(default_factory=TokenUsage)

    def ensure(self, *, usd: float, tokens: int) -> None:
        """Raise BudgetExhausted unless a request estimated at `usd` / `tokens` fits."""
        if self.max_usd is not None and self.spent_usd + usd > self.max_usd:
            raise BudgetExhausted(
                f"the round budget of {self.max_usd:.4f} USD is spent ({self.spent_usd:.4f} USD used, "
                f"the next call needs about {usd:.4f})"
            )
        if self.max_tokens is not None and self.spent.total + tokens > self.max_tokens:
            raise BudgetExhausted(
                f"the round budget of {self.max_tokens} tokens is spent ({self.spent.total} used, "
                f"the next call needs about {tokens})"
            )

    def charge(self, tokens: TokenUsage, usd: float) -> None:
        self.spent = self.spent + tokens
        self.spent_usd += usd


@dataclass
class Meter:
    """What one chain step spent."""

    requests: int = 0
    rate_limited: int = 0
    tokens: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0

    def add(self, tokens: TokenUsage, cost: float) -> None:
        self.tokens = self.tokens + tokens
        self.cost_usd += cost
