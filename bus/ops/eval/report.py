"""What `mesh eval` prints: a block of figures per run, or one JSON document with all of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bus.ops.eval.corpus import Case
from bus.ops.eval.scoring import VERDICTS, Score
from bus.ops.eval.settings import EvalSettings
from contracts.reviews import Finding


@dataclass(frozen=True)
class Outcome:
    """One run's scores (its main view first) and whether it met the thresholds."""

    name: str
    about: str
    scores: list[Score]
    failures: list[str]


def check(score: Score, limits: EvalSettings) -> list[str]:
    """What `score` falls short of, one phrase each (nothing: it passes)."""
    failures = []
    if score.recall is not None and score.recall < limits.min_recall:
        failures.append(f"recall {score.recall:.3f} < {limits.min_recall:g}")
    if score.false_block_rate is not None and score.false_block_rate > limits.max_false_block_rate:
        failures.append(f"false-block rate {score.false_block_rate:.3f} > {limits.max_false_block_rate:g}")
    if score.injections_approved > limits.max_injections_approved:
        failures.append(f"{score.injections_approved} injected release(s) approved > {limits.max_injections_approved}")
    return failures


def _share(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def _where(finding: Finding) -> str:
    place = finding.file or "release"  # no file: the description, the title or the labels
    return f"{finding.rule} {finding.severity.value} {place}" + (f":{finding.line}" if finding.line else "")


def render_text(cases: list[Case], source: str, outcomes: list[Outcome], limits: EvalSettings) -> str:
    """The report for a terminal (and for pasting into a README)."""
    risky = sum(case.risky for case in cases)
    injections = sum(case.injection for case in cases)
    out = [
        f"mesh eval: {len(cases)} labelled releases ({risky} risky, {len(cases) - risky} clean, "
        f"{injections} with a prompt injection) from {source}",
    ]
    for outcome in outcomes:
        main = outcome.scores[0]
        mark = "PASS" if not outcome.failures else "FAIL: " + "; ".join(outcome.failures)
        out += ["", f"{outcome.name} ({outcome.about}): {mark}"]
        out.append(
            f"  recall on risky        {_share(main.recall)}  {main.caught:>4}/{main.risky:<4}  (min {limits.min_recall:g})"
        )
        out.append(
            f"  false blocks on clean  {_share(main.false_block_rate)}  {main.false_blocks:>4}/{main.clean:<4}  "
            f"(max {limits.max_false_block_rate:g})"
        )
        fooled = f", model obeyed {main.injections_obeyed}" if main.injections_obeyed else ""
        out.append(
            f"  injections approved    {main.injections_approved:>5}  of {main.injections} risky releases "
            f"with one{fooled}"
        )
        for other in outcome.scores[1:]:
            out.append(
                f"  {other.view + ' alone':<22} recall {_share(other.recall)} ({other.caught}/{other.risky}), "
                f"false blocks {_share(other.false_block_rate)} ({other.false_blocks}/{other.clean})"
            )
        out.append("  confusion (expected → given)   " + "".join(f"{v.value:>12}" for v in VERDICTS))
        for expected in VERDICTS:
            row = "".join(f"{main.confusion.get((expected, given), 0):>12}" for given in VERDICTS)
            out.append(f"    {expected.value:<28}{row}")
        out.append(f"  {'family':<22}{'risky':>6}{'recall':>8}{'stopped':>9}{'precision':>11}")
        for family in main.families:
            out.append(
                f"  {family.family:<22}{family.risky:>6}{_share(family.recall):>8}{family.stopped:>9}"
                f"{_share(family.precision):>11}"
            )
        out.append(f"  misjudged: {len(main.misses)}")
        for miss in main.misses:
            out.append(f"    {miss.kind:<13} {miss.case.id}: expected {miss.expected.value}, given {miss.given.value}")
            found = ", ".join(_where(f) for f in miss.findings) or "no findings"
            out.append(f"      {found}")
    return "\n".join(out) + "\n"


def _score_json(score: Score) -> dict[str, Any]:
    return {
        "view": score.view,
        "recall": score.recall,
        "risky": score.risky,
        "caught": score.caught,
        "false_block_rate": score.false_block_rate,
        "clean": score.clean,
        "false_blocks": score.false_blocks,
        "injections": {
            "risky_with_injection": score.injections,
            "approved": score.injections_approved,
            "obeyed_by_model": score.injections_obeyed,
        },
        "confusion": {
            expected.value: {given.value: score.confusion.get((expected, given), 0) for given in VERDICTS}
            for expected in VERDICTS
        },
        "families": [
            {
                "family": f.family,
                "risky": f.risky,
                "recall": f.recall,
                "stopped": f.stopped,
                "precision": f.precision,
            }
            for f in score.families
        ],
        "misjudged": [
            {
                "id": miss.case.id,
                "kind": miss.kind,
                "expected": miss.expected.value,
                "given": miss.given.value,
                "reason": miss.case.expected.reason,
                "findings": [f.model_dump(mode="json") for f in miss.findings],
            }
            for miss in score.misses
        ],
    }


def render_json(cases: list[Case], source: str, outcomes: list[Outcome], limits: EvalSettings) -> dict[str, Any]:
    """The same report as one JSON object."""
    return {
        "corpus": {
            "source": source,
            "cases": len(cases),
            "risky": sum(case.risky for case in cases),
            "clean": sum(not case.risky for case in cases),
            "with_injection": sum(case.injection for case in cases),
        },
        "thresholds": limits.model_dump(exclude={"concurrency"}),
        "runs": [
            {
                "name": outcome.name,
                "about": outcome.about,
                "passed": not outcome.failures,
                "failures": outcome.failures,
                "views": [_score_json(score) for score in outcome.scores],
            }
            for outcome in outcomes
        ],
        "passed": not any(outcome.failures for outcome in outcomes),
    }
