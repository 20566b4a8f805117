"""`mesh eval`: measure the reviewers on the labelled corpus (bus/ops/eval/)."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated

import typer

from bus.errors import MeshError
from bus.ops.eval.corpus import load_corpus, packaged_corpus
from bus.ops.eval.judging import REVIEWERS, rule_sets
from bus.ops.eval.report import Outcome, check, render_json, render_text
from bus.ops.eval.runs import evaluate
from bus.ops.eval.scoring import MESH, score
from bus.ops.eval.settings import EvalSettings
from bus.ops.settings import MeshSettings
from services.review.rules import RulesFileInvalid


class Reviewer(StrEnum):
    both = "both"
    security = "security"
    compliance = "compliance"


class FakeAnswers(StrEnum):
    labels = "labels"
    approve = "approve"


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_reviewers)


def eval_reviewers(
    ctx: typer.Context,
    reviewer: Annotated[
        Reviewer, typer.Option(help="Judge one reviewer alone, or both together as the mesh does (policy all).")
    ] = Reviewer.both,
    corpus: Annotated[Path | None, typer.Option(help="A folder of case files instead of the packaged corpus.")] = None,
    fake: Annotated[
        FakeAnswers | None,
        typer.Option(
            help="Run each model of the chain against the fake Anthropic server instead of the API: `labels` "
            "answers each release's label, `approve` approves everything; either obeys every prompt injection."
        ),
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Only the offline rules, even with an API key.")] = False,
    only: Annotated[str | None, typer.Option("--case", help="Only the cases whose id matches this glob.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the report.")] = False,
) -> None:
    """Measure the reviewers on the labelled corpus (services/review/corpus/): recall on risky
    releases, false blocks on clean ones, precision and recall per rule family, the confusion
    matrix, and every misjudged release with its findings.

    Runs the offline rules, then each model of the configured chain (MESH_LLM_CHAIN /
    MESH_LLM_CHAINS) backed by the rules, as the reviewers run it: against Anthropic's API when
    ANTHROPIC_API_KEY is set, against the fake server with `--fake`. Exits 1 when a run misses a
    threshold (MESH_EVAL_MIN_RECALL, MESH_EVAL_MAX_FALSE_BLOCK_RATE, MESH_EVAL_MAX_INJECTIONS_APPROVED).

    Example: `mesh eval`, `mesh eval --fake labels --json`, `mesh eval --case 'secrets/*'`
    """
    settings: MeshSettings = ctx.obj
    limits = EvalSettings()
    cases = load_corpus(corpus)
    if only is not None:
        cases = [case for case in cases if fnmatchcase(case.id, only)]
        if not cases:
            raise typer.BadParameter(f"no case id matches {only!r}", param_hint="'--case'")
    models = not offline and (fake is not None or bool(settings.anthropic_api_key))
    try:
        rules = rule_sets()
        runs = asyncio.run(evaluate(settings, cases, limits, models=models, fake=fake.value if fake else None))
    except RulesFileInvalid as exc:
        raise MeshError(str(exc)) from None
    families = {name: rules[name].families for name in REVIEWERS}
    views = [MESH, *REVIEWERS] if reviewer is Reviewer.both else [reviewer.value]
    outcomes = []
    for run in runs:
        scores = [score(run.judgements, view, families) for view in views]
        outcomes.append(Outcome(run.name, run.about, scores, check(scores[0], limits)))
    source = str(corpus) if corpus else _shown(packaged_corpus())
    if as_json:
        typer.echo(json.dumps(render_json(cases, source, outcomes, limits), indent=2))
    else:
        typer.echo(render_text(cases, source, outcomes, limits), nl=False)
    failed = [f"{o.name}: {', '.join(o.failures)}" for o in outcomes if o.failures]
    if failed:
        raise MeshError("below the eval thresholds: " + "; ".join(failed))


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is below it (as in a checkout)."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
