"""Rule evaluation in the trace: one `review.rules` span per review, findings counted by
severity; in a chain brain, the rules then the model chain, both under the handler's span."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from contracts.releases import Change, ReleaseProposed
from contracts.reviews import Severity
from services.review.offline import INCOMPLETE, OfflineReviewer
from services.review.rules import load_rules
from tests.e2e.support import sample

SONNET = "claude-sonnet-4-6"


def reviewer(spans, **options) -> OfflineReviewer:
    return OfflineReviewer(load_rules("security"), name="security", tracer_provider=spans.provider, **options)


def test_a_review_is_one_rules_span_with_its_findings_by_severity(spans):
    """A leaked key: the span counts the rules checked, the files, each severity's findings (zeros
    too, one attribute per severity) and the verdict; the budget was not hit."""
    rules = load_rules("security")
    assessment = reviewer(spans, budget_seconds=5).review(sample("release_secret"))

    span = spans.one("review.rules")
    counts = Counter(finding.severity for finding in assessment.findings)
    assert counts[Severity.CRITICAL] >= 1
    assert dict(span.attributes) == {
        "mesh.agent": "security",
        "mesh.rules.checked": len(rules.rules) + len(rules.requirements),
        "mesh.rules.files": len(sample("release_secret").changes),
        "mesh.rules.findings": len(assessment.findings),
        **{f"mesh.rules.findings.{severity.value}": counts[severity] for severity in Severity},
        "mesh.rules.budget_exhausted": False,
        "mesh.rules.budget_seconds": 5,
        "mesh.review.verdict": assessment.verdict.value,
    }


def test_a_review_out_of_time_says_so_on_its_span(spans):
    """With the budget gone before the first line, the span says the budget was hit (REV001)."""
    ticking = itertools.count(0.0, 1.0).__next__
    assessment = reviewer(spans, budget_seconds=0.5, clock=ticking).review(sample("release_clean"))
    assert [finding.rule for finding in assessment.findings] == [INCOMPLETE]
    span = spans.one("review.rules")
    assert span.attributes["mesh.rules.budget_exhausted"] is True
    assert span.attributes["mesh.rules.findings.medium"] == 1
    assert span.attributes["mesh.review.verdict"] == "needs_human"


async def test_a_review_in_the_rules_thread_stays_in_the_callers_trace(spans):
    """A large release is read in the rules thread: its span is still the caller's child, and
    notes how long it waited for the thread."""
    big = "".join(f"+x{n} = {n}\n" for n in range(4000))
    proposal = ReleaseProposed(release_id="big", service="web", version="1", changes=[Change(path="a.py", diff=big)])
    with spans.provider.get_tracer("test").start_as_current_span("handler") as handler:
        await reviewer(spans).assess(proposal)
    span = spans.one("review.rules")
    assert span.parent.span_id == handler.get_span_context().span_id
    assert span.attributes["mesh.rules.queued_seconds"] >= 0


async def test_a_chain_review_shows_rules_then_the_chain_and_its_call(api, brain_for, spans):
    """Under the handler's span: `review.rules`, then `llm.chain` with its `chat` call, which
    names the agent."""
    brain = brain_for(llm_chain=f"{SONNET},offline", tracer_provider=spans.provider)
    with spans.provider.get_tracer("test").start_as_current_span("handler") as handler:
        assessment = await brain.assess(sample("release_secret", release_id="traced-1"))
    assert assessment.model == SONNET

    rules, chain, chat = spans.one("review.rules"), spans.one("llm.chain"), spans.one(f"chat {SONNET}")
    handler_id = handler.get_span_context().span_id
    assert rules.parent.span_id == chain.parent.span_id == handler_id
    assert chat.parent.span_id == chain.context.span_id
    assert rules.end_time <= chain.start_time
    assert chat.attributes["mesh.agent"] == chain.attributes["mesh.agent"] == "security"
    assert rules.attributes["mesh.rules.findings.critical"] >= 1
    assert chat.attributes["mesh.llm.cost_usd"] == pytest.approx(assessment.cost_usd, abs=1e-8)
