"""How a round's reviews become one outcome. Pure: no I/O, no clock, no broker.

Votes are the reviewers' verdicts. A reviewer that has not answered is *pending* until the
deadline, then its *fallback* votes for it:

    block                -> reject
    approve_with_warning -> approve (and the reason says so)
    escalate             -> needs_human

Policies (`MESH_POLICY`):

    all        approved only when every expected reviewer approves; any reject blocks;
               anything else (a needs_human) escalates.
    veto       any reject blocks; needs_human is an abstention; approved when at least one
               reviewer approves and nobody rejects; escalated when everybody abstains.
    majority   approved when more than half approve; blocked when more than half reject;
               escalated otherwise (ties, abstentions).
    quorum:K   approved once K reviewers approve; blocked once K approvals can no longer
               happen because of rejects; escalated otherwise.

A round is decided *early*, before its deadline, only when no possible set of answers from
the pending reviewers could change the outcome: a veto's first reject blocks at once, while
`all` keeps waiting as long as an approval is still possible.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from contracts.outcomes import Fallback, Outcome
from contracts.reviews import Verdict

FALLBACK_VOTES: dict[str, Verdict] = {
    Fallback.BLOCK: Verdict.REJECT,
    Fallback.APPROVE_WITH_WARNING: Verdict.APPROVE,
    Fallback.ESCALATE: Verdict.NEEDS_HUMAN,
}
_FALLBACK_EFFECTS: dict[str, str] = {
    Fallback.BLOCK: "blocks",
    Fallback.APPROVE_WITH_WARNING: "approves with a warning",
    Fallback.ESCALATE: "escalates",
}

# Beyond this many pending reviewers, enumerating every possible answer costs more than
# waiting: 3**8 = 6561 evaluations is still far below a millisecond of real work.
_MAX_PENDING_FOR_EARLY_DECISION = 8


class PolicyError(ValueError):
    """A policy string that does not parse, e.g. `quorum:0` or `mostly`."""


@dataclass(frozen=True)
class Policy:
    kind: str
    quorum: int = 0

    @classmethod
    def parse(cls, text: str) -> Policy:
        name, _, arg = text.strip().lower().partition(":")
        if name in ("all", "veto", "majority") and not arg:
            return cls(name)
        if name == "quorum":
            if not (arg.isascii() and arg.isdigit()) or int(arg) < 1:
                raise PolicyError(f"policy {text!r}: quorum needs a positive count, e.g. quorum:2")
            return cls("quorum", int(arg))
        raise PolicyError(f"unknown policy {text!r}; use all, veto, majority or quorum:K")

    def __str__(self) -> str:
        return f"quorum:{self.quorum}" if self.kind == "quorum" else self.kind

    def apply(self, votes: Sequence[Verdict]) -> Outcome:
        """The outcome of a complete set of votes (one per expected reviewer)."""
        approve = sum(v == Verdict.APPROVE for v in votes)
        reject = sum(v == Verdict.REJECT for v in votes)
        total = len(votes)
        if self.kind == "all":
            if reject:
                return Outcome.BLOCKED
            return Outcome.APPROVED if approve == total and total else Outcome.ESCALATED
        if self.kind == "veto":
            if reject:
                return Outcome.BLOCKED
            return Outcome.APPROVED if approve else Outcome.ESCALATED
        if self.kind == "majority":
            if approve * 2 > total:
                return Outcome.APPROVED
            if reject * 2 > total:
                return Outcome.BLOCKED
            return Outcome.ESCALATED
        # quorum:K
        if approve >= self.quorum:
            return Outcome.APPROVED
        if total - reject < self.quorum:
            return Outcome.BLOCKED
        return Outcome.ESCALATED


@dataclass(frozen=True)
class Decision:
    """What `decide` concluded, with everything needed to explain it."""

    outcome: Outcome
    reason: str
    missing: list[str] = field(default_factory=list)
    fallbacks_applied: dict[str, str] = field(default_factory=dict)


def decide(
    *,
    policy: Policy,
    expected: Sequence[str],
    verdicts: Mapping[str, Verdict],
    fallbacks: Mapping[str, str],
    deadline_passed: bool,
    finding_counts: Mapping[str, int] | None = None,
) -> Decision | None:
    """Decide a round, or return None while the outcome still depends on pending reviewers.

    `verdicts` maps reviewer -> verdict for the reviews received (reviewers not in
    `expected` are ignored). `fallbacks` maps each expected reviewer to its fallback name.
    """
    if not expected:
        return Decision(
            Outcome.ESCALATED,
            "Escalated: no live reviewer offers a review skill for this event, so nobody could approve it.",
        )
    counted = {name: verdicts[name] for name in expected if name in verdicts}
    pending = [name for name in expected if name not in counted]

    if deadline_passed:
        votes = dict(counted)
        applied = {name: fallbacks.get(name, Fallback.ESCALATE) for name in pending}
        votes.update({name: FALLBACK_VOTES[fallback] for name, fallback in applied.items()})
        outcome = policy.apply([votes[name] for name in expected])
        return Decision(
            outcome,
            explain(outcome, policy, counted, applied, finding_counts or {}),
            missing=pending,
            fallbacks_applied=applied,
        )

    if len(pending) > _MAX_PENDING_FOR_EARLY_DECISION:
        return None
    outcomes = {
        policy.apply([*counted.values(), *answers])
        for answers in itertools.product(tuple(Verdict), repeat=len(pending))
    }
    if len(outcomes) != 1:
        return None
    outcome = outcomes.pop()
    return Decision(
        outcome,
        explain(outcome, policy, counted, {}, finding_counts or {}, pending=pending),
        missing=pending,
    )


def explain(
    outcome: Outcome,
    policy: Policy,
    counted: Mapping[str, Verdict],
    applied: Mapping[str, str],
    finding_counts: Mapping[str, int],
    *,
    pending: Sequence[str] = (),
) -> str:
    """One sentence a human can read, naming who decided it and why."""

    def names(verdict: Verdict) -> list[str]:
        return [n for n, v in counted.items() if v == verdict]

    def joined(items: Sequence[str]) -> str:
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    def with_findings(who: list[str]) -> str:
        found = sum(finding_counts.get(n, 0) for n in who)
        return f" ({found} finding{'s' if found != 1 else ''})" if found else ""

    parts: list[str] = []
    rejected, approved, unsure = names(Verdict.REJECT), names(Verdict.APPROVE), names(Verdict.NEEDS_HUMAN)
    if rejected:
        parts.append(f"{joined(rejected)} rejected the release{with_findings(rejected)}")
    if unsure:
        parts.append(f"{joined(unsure)} asked for a human{with_findings(unsure)}")
    if approved:
        parts.append(f"{joined(approved)} approved")
    for name, fallback in applied.items():
        parts.append(f"{name} did not answer by the deadline and its fallback {_FALLBACK_EFFECTS[fallback]}")
    if pending:
        parts.append(f"no answer from {joined(list(pending))} could change that")
    head = outcome.value.capitalize()
    return f"{head} under policy {policy}: " + "; ".join(parts) + "."
