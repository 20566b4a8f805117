"""Choosing a reviewer's brain: the Anthropic model when a key is set, the rules otherwise."""

from __future__ import annotations

import anthropic

from services.review.assessment import Brain
from services.review.llm import AnthropicReviewer
from services.review.offline import OfflineReviewer
from services.review.rules import load_rules


def make_brain(
    focus: str,
    *,
    api_key: str | None,
    base_url: str | None,
    model: str,
    max_tokens: int,
    timeout: float,
) -> Brain:
    """The brain of the `focus` reviewer (`security` or `compliance`).

    Without an API key it is the offline rules reviewer. With one it is the Anthropic
    reviewer, which falls back to the same rules when a call fails.
    """
    rules = load_rules(focus)
    offline = OfflineReviewer(rules, name=focus)
    if not api_key:
        return offline
    client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=2)
    return AnthropicReviewer(
        client=client,
        model=model,
        max_tokens=max_tokens,
        focus=focus,
        rules=rules,
        fallback=offline,
        # Scrub secrets from the model's words whatever its focus: compliance sees diffs too.
        redact=load_rules("security").redact,
    )
