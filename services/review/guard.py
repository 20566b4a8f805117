"""The guardrail between a model's review and the rules': serious rule findings always stand.

A model can add findings and can be stricter than the rules, but it cannot erase a rule finding
at or above the guard's severity (`MESH_REVIEW_GUARD_SEVERITY`, default high), nor answer more
mildly than such a finding calls for: a leaked key or a removed auth check rejects, a finding
whose rule sends it to a human (a copyleft licence, instructions planted for the model) at least
escalates. Rules read code, not prose, so an instruction planted in a release that fools a
model cannot fool them — and they report the instruction itself (rules/shared.toml).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from contracts.reviews import Finding, Severity, Verdict
from services.review.assessment import Assessment
from services.review.checks import SEVERITY_RANK, VERDICT_RANK, severity_verdict


def _key(finding: Finding) -> tuple[str, str | None, int | None]:
    return finding.rule, finding.file, finding.line


def _by_severity(finding: Finding) -> Verdict:
    return severity_verdict(finding.severity)


def uphold(
    model: Assessment,
    rules: Assessment,
    *,
    severity: Severity = Severity.HIGH,
    effect: Callable[[Finding], Verdict] = _by_severity,
) -> Assessment:
    """`model`'s assessment with every rule finding at or above `severity` kept, and its verdict
    raised to the strictest those findings call for (`effect`: a finding's verdict, by its rule)."""
    standing = [f for f in rules.findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK[severity]]
    if not standing:
        return model
    seen = {_key(f) for f in model.findings}
    findings = [*(f for f in standing if _key(f) not in seen), *model.findings]
    least = max((effect(f) for f in standing), key=VERDICT_RANK.__getitem__)
    if VERDICT_RANK[model.verdict] >= VERDICT_RANK[least]:
        return dataclasses.replace(model, findings=findings)
    cited = ", ".join(sorted({f.rule for f in standing}))
    return dataclasses.replace(
        model,
        verdict=least,
        confidence=rules.confidence,
        findings=findings,
        rationale=(
            f"The offline rules found {len(standing)} problem(s) of {severity.value} severity or worse ({cited}); "
            f"a model cannot overrule them, so the model's {model.verdict.value} became {least.value}. "
            f"Model said: {model.rationale}"
        ),
    )
