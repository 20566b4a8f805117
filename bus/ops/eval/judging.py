"""Running reviewers over the corpus: the offline rules, or one model of the chain backed by them.

Each case is assessed by each reviewer's brain exactly as the service would (the same `Brain`,
the same rules, the same guard), a few cases at a time. A model run asks `model` first and falls
back to the rules, like a chain of `model,offline`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from bus.ops.eval.corpus import Case
from bus.ops.eval.scoring import Judgement, Opinion
from contracts.envelope import utc_now
from contracts.reviews import Verdict
from services.review.assessment import Assessment, Brain
from services.review.offline import OfflineReviewer
from services.review.rules import RuleSet, load_rules

REVIEWERS = ("security", "compliance")


@dataclass(frozen=True)
class Run:
    """One reviewer set's judgements of the corpus; `name` is what answered (`offline-rules`, a model)."""

    name: str
    about: str
    judgements: list[Judgement]


def rule_sets(names: tuple[str, ...] = REVIEWERS) -> dict[str, RuleSet]:
    """The packaged rules of each reviewer."""
    return {name: load_rules(name) for name in names}


def offline_brains(rules: dict[str, RuleSet]) -> dict[str, Brain]:
    """The offline reviewers, without a time budget: the same release always gets the same answer."""
    return {name: OfflineReviewer(ruleset, name=name) for name, ruleset in rules.items()}


def opinion(assessment: Assessment, rules: RuleSet) -> Opinion:
    """`assessment` as scored: which families its stopping findings belong to (by the rules' ids)."""
    checks = rules.checks
    stopping = frozenset(
        checks[finding.rule].family
        for finding in assessment.findings
        if finding.rule in checks and rules.effect_of(finding.rule, finding.severity) is not Verdict.APPROVE
    )
    return Opinion(assessment.verdict, list(assessment.findings), stopping, assessment.model)


async def judge(
    cases: list[Case],
    brains: dict[str, Brain],
    rules: dict[str, RuleSet],
    *,
    concurrency: int = 8,
    obeyed: Callable[[Case], bool] | None = None,
) -> list[Judgement]:
    """Every case assessed by every brain; `obeyed(case)` says whether the model was fooled into approving."""
    slots = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> Judgement:
        async with slots:
            # now, so that a model's deadline (the round's, from `occurred_at`) is a fresh one
            release = case.release.model_copy(update={"occurred_at": utc_now()})
            opinions = {name: opinion(await brain.assess(release), rules[name]) for name, brain in brains.items()}
        return Judgement(case, opinions, obeyed_injection=bool(obeyed and case.injection and obeyed(case)))

    return list(await asyncio.gather(*(one(case) for case in cases)))
