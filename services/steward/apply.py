"""How each event changes the steward's state. Pure: no I/O, no clock; the state is changed in
place and what must be published is returned.

    release.proposed  ->  its service's record; the release -> service map; any review or outcome
                          that arrived before it, applied now
    review.submitted  ->  its service's reviews, cost, tokens and finding counts
    round.decided     ->  its service's recent decisions, tallies, open escalations and risk
                          level; returns a `DecisionRecorded` for the history, and a
                          `ServiceRiskChanged` when the level moved

`at` is where the event sits in its stream (`stream`, `seq`, `time`). What an event publishes
takes its id from there (`event_id`, also the `Nats-Msg-Id`), and its time from the event, so
applying the same event again — a replay after a crash — publishes the same messages, which the
stream stores once.
"""

from __future__ import annotations

from datetime import datetime

from bus.stateful import Position
from contracts.envelope import Envelope
from contracts.outcomes import Outcome, RoundDecided
from contracts.releases import ReleaseProposed
from contracts.reviews import Finding, ReviewSubmitted
from contracts.stewardship import MAX_REASON_CHARS, MAX_RULES_PER_DECISION, DecisionRecorded, ServiceRiskChanged
from contracts.subjects import subject_token
from services.steward.risk import Window, assess
from services.steward.state import (
    DIGEST_CHARS,
    MAX_FINDING_RULES,
    MAX_NAME_CHARS,
    MAX_OPEN_ESCALATIONS,
    MAX_PENDING,
    MAX_RELEASES,
    MAX_SERVICES,
    RECENT,
    Decision,
    Escalation,
    Pending,
    ReviewFacts,
    ServiceRecord,
    StewardState,
)

PRODUCER = "steward"
_SEVERITY = ("critical", "high", "medium", "low", "info")


def service_name(service: str) -> str:
    """A service's name as the steward keeps it: the first MAX_NAME_CHARS characters."""
    return service[:MAX_NAME_CHARS]


def service_key(service: str) -> str:
    """The key of a service in the state and in its URL: the subject token of its name, as in its
    history subjects (`Subjects.decision_recorded(name)`)."""
    return subject_token(service_name(service))


def apply_proposal(state: StewardState, proposal: ReleaseProposed, at: Position) -> list[Envelope]:
    _applied(state, at)
    name = service_name(proposal.service)
    _record(state, name, at.time).proposed += 1
    state.releases.pop(proposal.release_id, None)  # re-proposed: the newest again
    state.releases[proposal.release_id] = name
    while len(state.releases) > MAX_RELEASES:
        del state.releases[next(iter(state.releases))]
    waiting = [p for p in state.pending if p.release_id == proposal.release_id]
    state.pending = [p for p in state.pending if p.release_id != proposal.release_id]
    return [message for early in waiting for message in _settle(state, name, early)]


def apply_review(state: StewardState, review: ReviewSubmitted, at: Position) -> list[Envelope]:
    _applied(state, at)
    facts = ReviewFacts(cost_usd=review.cost_usd, tokens=review.tokens.total, rules=rules_of(review.findings))
    return _settle_or_wait(state, _event(review.release_id, "review", at, review=facts))


def apply_outcome(state: StewardState, outcome: RoundDecided, at: Position) -> list[Envelope]:
    _applied(state, at)
    findings = [f for review in outcome.reviews for f in review.findings]
    decision = Decision(
        release_id=outcome.release_id,
        digest=outcome.content_digest[:DIGEST_CHARS],
        seq=at.seq,
        outcome=outcome.outcome,
        decided_at=outcome.occurred_at,
        rules=rules_of(findings),
        critical=sum(f.severity.value == "critical" for f in findings),
        findings=len(findings) + sum(review.findings_omitted for review in outcome.reviews),
        cost_usd=outcome.cost_usd,
    )
    reason = _clip(outcome.reason, MAX_REASON_CHARS)
    early = _event(outcome.release_id, "outcome", at, decision=decision, reason=reason, cause=outcome.event_id)
    return _settle_or_wait(state, early)


def rules_of(findings: list[Finding]) -> list[str]:
    """Distinct rule ids, the most severe first (then in the order found), at most MAX_RULES_PER_DECISION."""
    ranked = sorted(findings, key=lambda f: _SEVERITY.index(f.severity.value))  # stable
    return list(dict.fromkeys(f.rule for f in ranked))[:MAX_RULES_PER_DECISION]


# --- the pieces -----------------------------------------------------------------------
#
# The streams are read apart, so the same events may be applied in another interleaving after a
# restart than before it. Whatever can be is kept independent of that order: decisions and
# escalations are ordered by their place in the outcomes stream, times are the latest seen, and
# the waiting list is ordered by stream time. (Past a bound — a forgotten service, a rule pushed
# out of the finding table — which one goes can depend on the order.)


def _applied(state: StewardState, at: Position) -> None:
    state.applied += 1
    state.as_of = max(state.as_of, at.time) if state.as_of else at.time


def _event(release_id: str, kind: str, at: Position, **facts) -> Pending:
    return Pending(release_id=release_id, kind=kind, at=f"{at.stream}:{at.seq}", time=at.time, **facts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _settle_or_wait(state: StewardState, event: Pending) -> list[Envelope]:
    """Apply `event` to its release's service, or keep it until the release's proposal comes."""
    name = state.releases.get(event.release_id)
    if name is not None:
        return _settle(state, name, event)
    state.pending.append(event)
    state.pending.sort(key=lambda p: (p.time, p.at))
    if len(state.pending) > MAX_PENDING:
        del state.pending[0]
        state.unattributed += 1
    return []


def _settle(state: StewardState, name: str, event: Pending) -> list[Envelope]:
    record = _record(state, name, event.time)
    if event.review is not None:
        _count_review(record, event.review)
        return []
    if event.decision is not None:
        return _decide(record, event)
    return []


def _record(state: StewardState, name: str, time: datetime) -> ServiceRecord:
    key = subject_token(name)
    record = state.services.get(key)
    if record is None:
        record = state.services[key] = ServiceRecord(name=name, first_seen=time, last_seen=time)
        _forget_idle(state, keep=key)
    record.first_seen = min(record.first_seen, time) if record.first_seen else time
    record.last_seen = max(record.last_seen, time) if record.last_seen else time
    return record


def _forget_idle(state: StewardState, *, keep: str) -> None:
    """Past MAX_SERVICES, forget the service seen longest ago (never `keep`)."""
    while len(state.services) > MAX_SERVICES:
        idle = min((k for k in state.services if k != keep), key=lambda k: (state.services[k].last_seen, k))
        del state.services[idle]
        state.services_forgotten += 1


def _count_review(record: ServiceRecord, facts: ReviewFacts) -> None:
    record.reviews += 1
    record.cost_usd = round(record.cost_usd + facts.cost_usd, 8)
    record.tokens += facts.tokens
    for rule in facts.rules:
        record.findings[rule] = record.findings.get(rule, 0) + 1
    while len(record.findings) > MAX_FINDING_RULES:
        rarest = min(record.findings, key=lambda rule: (record.findings[rule], rule))
        record.findings_other += record.findings.pop(rarest)


def _decide(record: ServiceRecord, event: Pending) -> list[Envelope]:
    decision = event.decision
    release = decision.release_id
    if any(d.release_id == release and d.digest == decision.digest for d in record.recent):
        return []  # this revision is counted already
    record.recent.append(decision)
    record.recent.sort(key=lambda d: d.seq)
    del record.recent[:-RECENT]
    record.decided.add(decision.outcome)
    # A release decided again is no longer waiting for a human, whatever the new outcome; an
    # escalation is open only if nothing decided that release after it.
    record.open_escalations = [e for e in record.open_escalations if e.release_id != release or e.seq > decision.seq]
    later = any(d.release_id == release and d.seq > decision.seq for d in record.recent)
    if decision.outcome is Outcome.ESCALATED and not later:
        escalation = Escalation(
            release_id=release, digest=decision.digest, seq=decision.seq, escalated_at=decision.decided_at
        )
        record.open_escalations.append(escalation)
        record.open_escalations.sort(key=lambda e: e.seq)
        if len(record.open_escalations) > MAX_OPEN_ESCALATIONS:
            del record.open_escalations[0]
            record.escalations_dropped += 1
    previous = record.risk
    risk = assess(record)
    record.risk, record.risk_reasons = risk.level, risk.reasons
    envelope = {
        "correlation_id": release,
        "causation_id": event.cause,
        "producer": PRODUCER,
        "occurred_at": decision.decided_at,
    }
    published: list[Envelope] = [
        DecisionRecorded(
            event_id=f"steward:decided:{event.at}",
            service=record.name,
            release_id=release,
            content_digest=decision.digest,
            outcome=decision.outcome,
            decided_at=decision.decided_at,
            rules=decision.rules,
            critical=decision.critical,
            findings=decision.findings,
            cost_usd=decision.cost_usd,
            reason=event.reason,
            risk=risk.level,
            **envelope,
        )
    ]
    if risk.level != previous:
        window = Window.of(record)
        published.append(
            ServiceRiskChanged(
                event_id=f"steward:risk:{event.at}",
                service=record.name,
                previous=previous,
                level=risk.level,
                reasons=risk.reasons,
                release_id=release,
                window=window.decisions,
                blocked=window.blocked,
                escalated=window.escalated,
                critical=window.critical,
                open_escalations=window.open_escalations,
                **envelope,
            )
        )
    return published
