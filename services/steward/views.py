"""What the steward's HTTP API answers, built from its state. Pure: the clock comes in as `now`.

Every answer says how fresh it is (`as_of`, `age_seconds`) and where it comes from: the active
instance's live state, or — on a standby — the last checkpoint it restored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.steward.risk import Window
from services.steward.state import ServiceRecord, StewardState

TOP_FINDINGS = 5


def freshness(state: StewardState, *, active: bool, now: datetime) -> dict[str, Any]:
    """How current the views are: the stream time of the last event in the state, and its age."""
    age = (now - state.as_of).total_seconds() if state.as_of else None
    return {
        "as_of": state.as_of.isoformat() if state.as_of else None,
        "age_seconds": round(max(age, 0.0), 3) if age is not None else None,
        "source": "live" if active else "checkpoint",
        "events_applied": state.applied,
    }


def rates(record: ServiceRecord) -> dict[str, Any]:
    """Block and escalation rates over the recent decisions (the risk rule's window) and since first seen."""
    window = Window.of(record)
    total = record.decided.total
    return {
        "window": window.decisions,
        "block_rate": round(window.rate(window.blocked), 4),
        "escalation_rate": round(window.rate(window.escalated), 4),
        "lifetime_block_rate": round(record.decided.blocked / total, 4) if total else 0.0,
        "lifetime_escalation_rate": round(record.decided.escalated / total, 4) if total else 0.0,
    }


def top_findings(record: ServiceRecord, count: int = TOP_FINDINGS) -> list[dict[str, Any]]:
    """The rule ids named by most reviews, most first (ties by rule id)."""
    ranked = sorted(record.findings.items(), key=lambda item: (-item[1], item[0]))
    return [{"rule": rule, "reviews": n} for rule, n in ranked[:count]]


def summary(key: str, record: ServiceRecord) -> dict[str, Any]:
    """One service in the list."""
    return {
        "service": record.name,
        "key": key,
        "risk": record.risk.value,
        "decided": record.decided.model_dump() | {"total": record.decided.total},
        **{name: value for name, value in rates(record).items() if name in ("block_rate", "escalation_rate")},
        "open_escalations": len(record.open_escalations),
        "cost_usd": record.cost_usd,
        "last_seen": record.last_seen.isoformat() if record.last_seen else None,
        "url": f"/services/{key}",
    }


def detail(key: str, record: ServiceRecord) -> dict[str, Any]:
    """Everything the steward keeps about one service."""
    return {
        **summary(key, record),
        "risk_reasons": record.risk_reasons,
        "assessment": assessment(record),
        "rates": rates(record),
        "proposed": record.proposed,
        "reviews": record.reviews,
        "tokens": record.tokens,
        "recent": [d.model_dump(mode="json") for d in reversed(record.recent)],
        "open_escalation_list": [e.model_dump(mode="json") for e in reversed(record.open_escalations)],
        "escalations_dropped": record.escalations_dropped,
        "top_findings": top_findings(record),
        "findings_other": record.findings_other,
        "first_seen": record.first_seen.isoformat() if record.first_seen else None,
        "history": f"/services/{key}/history",
    }


def listing(state: StewardState, *, active: bool, now: datetime) -> dict[str, Any]:
    """Every service, the riskiest first (then by name)."""
    order = {"high": 0, "medium": 1, "low": 2}
    keys = sorted(state.services, key=lambda k: (order[state.services[k].risk.value], state.services[k].name))
    return {
        "services": [summary(k, state.services[k]) for k in keys],
        "count": len(keys),
        "forgotten": state.services_forgotten,
        "unattributed": state.unattributed,
        "pending": len(state.pending),
        **freshness(state, active=active, now=now),
    }


def assessment(record: ServiceRecord) -> str:
    """A few plain sentences about the service, from the numbers alone (the same numbers, the same words)."""
    window = Window.of(record)
    if not window.decisions:
        return f"{record.name}: no release decided yet ({record.proposed} proposed)."
    words = [f"{record.name} is at {record.risk.value} risk"]
    words[0] += f": {'; '.join(record.risk_reasons)}." if record.risk_reasons else "."
    words.append(
        f"Of its last {window.decisions} decided releases {window.decisions - window.blocked - window.escalated} "
        f"were approved, {window.blocked} blocked and {window.escalated} escalated."
    )
    if record.open_escalations:
        words.append(f"{len(record.open_escalations)} escalated release(s) still wait for a human.")
    if top := top_findings(record, 3):
        words.append("Most frequent findings: " + ", ".join(f"{f['rule']} ({f['reviews']})" for f in top) + ".")
    words.append(f"Reviews have cost ${record.cost_usd:.4f} so far.")
    return " ".join(words)
