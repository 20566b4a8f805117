"""The offline reviewer: the rules files applied to a release's diffs, deterministically.

It needs no network and no key, so it is both the default brain and the model's fallback.
Messages come from the rules file only and never quote diff text: a secret or an
instruction planted in a diff cannot travel on into a review.

A review has a time budget (`MESH_REVIEW_BUDGET_SECONDS`) and runs in a worker thread, so no
line, however long or crafted, can stall the event loop (health, heartbeats, in-progress
acks) or run for ever. A review that runs out of time answers `needs_human` with an
`INCOMPLETE` finding saying so, keeping whatever it found before; it never approves.

Each review is one `review.rules` span: how many rules were checked over how many files, the
findings by severity, the verdict, and whether the time budget ran out.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import TracerProvider

from contracts.releases import ReleaseProposed
from contracts.reviews import Finding, Severity, TokenUsage, Verdict
from services.review.assessment import Assessment
from services.review.checks import SEVERITY_RANK, Deadline, RuleSet
from services.review.scanning import INCOMPLETE, Hit, incomplete_check, scan

MODEL = "offline-rules"
__all__ = ["INCOMPLETE", "MODEL", "OfflineReviewer", "incomplete_check", "scan"]
_VERDICT_RANK = {Verdict.APPROVE: 0, Verdict.NEEDS_HUMAN: 1, Verdict.REJECT: 2}
# Regexes are precise about what they match but blind to context, so only a critical hit
# (a key format, a private key block) earns near-certainty; a medium is a question for a human.
_CLEAN_CONFIDENCE = 0.95
_MINOR_CONFIDENCE = 0.9
_NEEDS_HUMAN_CONFIDENCE = 0.7
_REJECT_CONFIDENCE = {Severity.CRITICAL: 0.99, Severity.HIGH: 0.95}
_CITED = 5  # findings named in the rationale; the rest are in `findings`


# One thread for every review of the process: reviews are CPU work, and several threads would
# only take turns at the GIL (at C=128 that tripled the CPU a review costs), while one keeps
# the event loop free all the same.
_RULES_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rules")
_INLINE_CHARS = 16 * 1024  # of diff: the largest release read on the event loop (see `assess`)


def _where(finding: Finding) -> str:
    if finding.file is None:
        return finding.rule
    return f"{finding.rule} at {finding.file}" + (f":{finding.line}" if finding.line else "")


def _rationale(name: str, verdict: Verdict, hits: list[Hit], files: int, rules: RuleSet) -> str:
    if not hits:
        checked = len(rules.rules) + len(rules.requirements)
        return f"No {name} rule matched the {files} changed file(s); {checked} rules checked."
    counts = Counter(hit.finding.severity for hit in hits)
    tally = ", ".join(f"{counts[s]} {s.value}" for s in sorted(counts, key=lambda s: -SEVERITY_RANK[s]))
    cited = "; ".join(_where(hit.finding) for hit in hits[:_CITED])
    more = f" and {len(hits) - _CITED} more" if len(hits) > _CITED else ""
    lead = {
        Verdict.REJECT: "Rejected by the {name} rules",
        Verdict.NEEDS_HUMAN: "A human should check the {name} findings",
        Verdict.APPROVE: "Approved; minor {name} notes",
    }[verdict].format(name=name)
    return f"{lead}: {len(hits)} finding(s) ({tally}): {cited}{more}."


def _span_attributes(rules: RuleSet, proposal: ReleaseProposed, hits: list[Hit], verdict: Verdict) -> dict[str, Any]:
    """What the `review.rules` span says; one attribute per severity keeps it low in cardinality."""
    counts = Counter(hit.finding.severity for hit in hits)
    return {
        "mesh.rules.checked": len(rules.rules) + len(rules.requirements),
        "mesh.rules.files": len(proposal.changes),
        "mesh.rules.findings": len(hits),
        **{f"mesh.rules.findings.{severity.value}": counts[severity] for severity in Severity},
        "mesh.rules.budget_exhausted": any(hit.finding.rule == INCOMPLETE for hit in hits),
        "mesh.review.verdict": verdict.value,
    }


def _confidence(verdict: Verdict, hits: list[Hit]) -> float:
    if verdict is Verdict.REJECT:
        worst = max((hit.finding.severity for hit in hits if hit.effect is Verdict.REJECT), key=SEVERITY_RANK.get)
        return _REJECT_CONFIDENCE.get(worst, _REJECT_CONFIDENCE[Severity.HIGH])
    if verdict is Verdict.NEEDS_HUMAN:
        return _NEEDS_HUMAN_CONFIDENCE
    return _MINOR_CONFIDENCE if hits else _CLEAN_CONFIDENCE


class OfflineReviewer:
    """A `Brain` that applies one rule set; same release in, same assessment out.

    `budget_seconds` bounds each review (`None`: no bound, for tests and tools); a review that
    runs out of it answers `needs_human` with an `INCOMPLETE` finding, never approve.
    """

    model = MODEL

    def __init__(
        self,
        rules: RuleSet,
        *,
        name: str,
        budget_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.rules = rules
        self.name = name
        self.budget_seconds = budget_seconds
        self.clock = clock
        self.incomplete = incomplete_check(name, budget_seconds)
        self.tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)

    async def assess(self, proposal: ReleaseProposed) -> Assessment:
        """Review `proposal` with the rules (no I/O, so it never fails on the network).

        A large release, or any release under rules from outside the package, is read in the
        rules thread, where the engine lets go of the GIL on long lines: the event loop keeps
        answering health checks and sending heartbeats and in-progress acks however long it
        takes. A small release under the packaged rules, whose patterns are linear, is read
        right here: at most `_INLINE_CHARS` of diff take ~15 ms even when crafted to be slow,
        and handing each small review to a thread cost a quarter of the mesh's throughput.
        """
        if self.rules.proven and sum(len(change.diff) for change in proposal.changes) <= _INLINE_CHARS:
            return self.review(proposal)
        # Run in this task's context, so the thread's span is a child of the handler's.
        context, queued_at = contextvars.copy_context(), self.clock()
        return await asyncio.get_running_loop().run_in_executor(
            _RULES_THREAD, context.run, self.review, proposal, queued_at
        )

    def review(self, proposal: ReleaseProposed, queued_at: float | None = None) -> Assessment:
        """The synchronous form of `assess`: pure when there is no budget.

        `queued_at` (on `clock`): when `assess` handed the release to the rules thread; the span
        notes the wait for it.
        """
        with self.tracer.start_as_current_span("review.rules", attributes={"mesh.agent": self.name}) as span:
            started = self.clock()
            deadline = Deadline(None if self.budget_seconds is None else started + self.budget_seconds, self.clock)
            hits = scan(proposal, self.rules, deadline=deadline, incomplete=self.incomplete)
            verdict = max((hit.effect for hit in hits), key=_VERDICT_RANK.__getitem__, default=Verdict.APPROVE)
            if span.is_recording():
                span.set_attributes(_span_attributes(self.rules, proposal, hits, verdict))
                if self.budget_seconds is not None:
                    span.set_attribute("mesh.rules.budget_seconds", self.budget_seconds)
                if queued_at is not None:
                    span.set_attribute("mesh.rules.queued_seconds", round(started - queued_at, 6))
        rationale = _rationale(self.name, verdict, hits, len(proposal.changes), self.rules)
        if any(hit.source is self.incomplete for hit in hits):
            rationale = f"The {self.name} rules ran out of time ({INCOMPLETE}), so nothing can be approved. {rationale}"
        return Assessment(
            verdict=verdict,
            confidence=_confidence(verdict, hits),
            rationale=rationale,
            findings=[hit.finding for hit in hits],
            model=MODEL,
            tokens=TokenUsage(),
        )
