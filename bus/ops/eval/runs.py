"""The runs `mesh eval` makes: the offline rules, then each model of the configured chain.

A model run reviews every release with that model first and the rules behind it (a chain of
`model,offline`), through the process's kind of LLM client, for each reviewer whose chain names
the model; a reviewer whose chain does not is the rules alone. Against the fake server
(fake.py), every model is the same perfect-but-gullible stand-in.
"""

from __future__ import annotations

from collections.abc import Callable

from bus.ops.eval.corpus import Case
from bus.ops.eval.judging import REVIEWERS, Run, judge, offline_brains, rule_sets
from bus.ops.eval.settings import EvalSettings
from services.llm.settings import LLMSettings
from services.review.assessment import Brain
from services.review.rules import RuleSet
from services.review.settings import ReviewerSettings

OFFLINE = "offline-rules"


def chain_models(settings: LLMSettings) -> list[str]:
    """Every model of the reviewers' chains, in chain order, each once."""
    from services.llm.chain import OFFLINE as OFFLINE_STEP

    seen: dict[str, None] = {}
    for name in REVIEWERS:
        seen.update(dict.fromkeys(m for m in settings.chain_for(name) if m != OFFLINE_STEP))
    return list(seen)


async def evaluate(
    settings: ReviewerSettings,
    cases: list[Case],
    limits: EvalSettings,
    *,
    models: bool,
    fake: str | None = None,
) -> list[Run]:
    """The offline run, then (`models`) one run per chain model: against the real API, or against
    the fake server answering `fake` (`labels`: each case's label; `approve`: always approve)."""
    rules = rule_sets()
    runs = [
        Run(
            OFFLINE,
            "the offline rules of both reviewers",
            await judge(cases, offline_brains(rules), rules, concurrency=limits.concurrency),
        )
    ]
    if not models:
        return runs
    if fake is None:
        return runs + await _model_runs(settings, cases, rules, limits, "Anthropic API", None)
    from bus.ops.eval.fake import gullible_model, obeys

    families = {name: rules[name].families for name in REVIEWERS}
    with gullible_model(cases, families, answers=fake) as api:
        faked = settings.model_copy(
            update={
                "anthropic_api_key": "fake-key",
                "anthropic_base_url": api.url,
                "llm_rpm": 1e6,
                "llm_tpm": 1e12,
                "llm_max_in_flight": 64,
            }
        )
        what = {"labels": "answers each release's label", "approve": "approves every release"}[fake]
        return runs + await _model_runs(
            faked, cases, rules, limits, f"fake server that {what} and obeys injections", obeys
        )


async def _model_runs(
    settings: ReviewerSettings,
    cases: list[Case],
    rules: dict[str, RuleSet],
    limits: EvalSettings,
    where: str,
    obeyed: Callable[[Case], bool] | None,
) -> list[Run]:
    from pydantic import SecretStr

    from services.llm.client import LLMClient
    from services.review.brain import make_brain

    if isinstance(settings.anthropic_api_key, str):  # model_copy does not validate
        settings = settings.model_copy(update={"anthropic_api_key": SecretStr(settings.anthropic_api_key)})
    llm = LLMClient.from_settings(settings)
    runs = []
    try:
        for model in chain_models(settings):
            brains: dict[str, Brain] = {}
            for name in REVIEWERS:
                if model in settings.chain_for(name):
                    alone = settings.model_copy(
                        update={"llm_chain": f"{model},offline", "llm_chains": "", "llm_tier_model": ""}
                    )
                    brains[name] = make_brain(name, settings=alone, llm=llm)
                else:
                    brains[name] = offline_brains({name: rules[name]})[name]
            judged = await judge(cases, brains, rules, concurrency=limits.concurrency, obeyed=obeyed)
            asked = ", ".join(name for name in REVIEWERS if model in settings.chain_for(name))
            runs.append(Run(model, f"{where}; asked by {asked}, the rules behind it", judged))
    finally:
        await llm.close()
    return runs
