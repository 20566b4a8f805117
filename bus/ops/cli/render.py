"""How outcomes look in a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from contracts.outcomes import Outcome, RoundDecided

_STYLE = {Outcome.APPROVED: "bold green", Outcome.BLOCKED: "bold red", Outcome.ESCALATED: "bold yellow"}
_VERDICT_STYLE = {"approve": "green", "reject": "red", "needs_human": "yellow"}


def folded_table(*columns: str) -> Table:
    """A borderless table whose cells wrap, and fold a word too long for its column (a URL, a
    subject), instead of cutting it with `…`: a narrow terminal gets taller rows, never less text."""
    table = Table(box=None)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def print_outcome(console: Console, outcome: RoundDecided) -> None:
    console.print(
        f"[{_STYLE[outcome.outcome]}]{outcome.outcome.value.upper()}[/] {outcome.release_id}  "
        f"[dim](policy {outcome.policy}; content {outcome.content_digest[:12] or '?'})[/]"
    )
    console.print(f"  {outcome.reason}", highlight=False)
    for review in outcome.reviews:
        style = _VERDICT_STYLE.get(review.verdict.value, "white")
        console.print(
            f"  • {review.reviewer}: [{style}]{review.verdict.value}[/] "
            f"(confidence {review.confidence:.2f}, model {review.model}, {review.tokens.total} tokens)",
            highlight=False,
        )
        for finding in review.findings:
            where = f"{finding.file}:{finding.line}" if finding.file and finding.line else finding.file or "-"
            console.print(
                f"      [{finding.severity.value}] {finding.rule} {where} — {finding.message}",
                highlight=False,
                markup=False,
            )
        if review.findings_omitted:
            console.print(f"      [dim]… and {review.findings_omitted} less severe finding(s) not listed[/]")
    for name in outcome.missing:
        fallback = outcome.fallbacks_applied.get(name)
        if fallback:
            console.print(f"  • {name}: [dim]no review by the deadline[/] → fallback {fallback}")
        else:
            console.print(f"  • {name}: [dim]not needed: decided before it answered[/]")
    for decision in outcome.human_decisions:  # the people who decided an escalation
        note = f" — {decision.note}" if decision.note else ""
        console.print(
            f"  • {decision.who}: {decision.decision} at {decision.when.isoformat(timespec='seconds')} "
            f"(via {decision.via or '?'}){note}",
            highlight=False,
            markup=False,
        )
    if outcome.approval is not None and outcome.approval.expired:
        console.print(
            f"  • nobody decided by {outcome.approval.deadline.isoformat(timespec='seconds')}", highlight=False
        )
    for rejected in outcome.rejected:
        # Names and reasons may come from whoever published the review: never read them as markup.
        console.print(
            f"  • {escape(rejected.reviewer)}: [dim]review not counted — {escape(rejected.reason)}[/]", highlight=False
        )


EXIT_CODES = {Outcome.APPROVED: 0, Outcome.BLOCKED: 1, Outcome.ESCALATED: 3}
EXIT_NO_OUTCOME = 4
EXIT_AWAITING_APPROVAL = 3  # the reviewers escalated and a person decides: as escalated, no outcome yet
EXIT_INVALID = 2
