"""services/steward/state.py: the state never grows past its bounds, and the largest it can be fits one KV value."""

from __future__ import annotations

from datetime import timedelta

from contracts.outcomes import Outcome
from contracts.stewardship import MAX_RULES_PER_DECISION, RiskLevel
from services.steward.apply import apply_outcome, apply_proposal, apply_review
from services.steward.state import (
    MAX_FINDING_RULES,
    MAX_NAME_CHARS,
    MAX_OPEN_ESCALATIONS,
    MAX_PENDING,
    MAX_RELEASES,
    MAX_SERVICES,
    MAX_STATE_BYTES,
    RECENT,
    Decision,
    Escalation,
    Pending,
    ServiceRecord,
    StewardState,
)
from tests.services.steward.events import T0, at, outcome, proposal, review
from tests.services.steward.test_apply import Feed

KV_VALUE_LIMIT = 1024 * 1024


def test_recent_decisions_and_open_escalations_stay_bounded():
    """Past RECENT decisions the oldest go; past MAX_OPEN_ESCALATIONS the oldest escalation is dropped and counted."""
    feed = Feed()
    for n in range(RECENT + MAX_OPEN_ESCALATIONS + 5):
        feed.release(f"rel-{n}", "escalated")
    record = feed.record()
    assert len(record.recent) == RECENT
    assert record.recent[-1].release_id == f"rel-{RECENT + MAX_OPEN_ESCALATIONS + 4}"
    assert len(record.open_escalations) == MAX_OPEN_ESCALATIONS
    assert record.escalations_dropped == RECENT + 5
    assert record.decided.escalated == RECENT + MAX_OPEN_ESCALATIONS + 5  # the tally counts every one


def test_the_finding_table_keeps_the_frequent_rules_and_sums_the_rest():
    """Past MAX_FINDING_RULES rules, the rarest goes into `findings_other`; nothing is lost from the sum."""
    feed = Feed()
    feed.propose("rel-1")
    for _ in range(3):
        feed.review("rel-1", "SEC001")
    for n in range(MAX_FINDING_RULES + 10):
        feed.review("rel-1", f"R{n:03}")
    record = feed.record()
    assert len(record.findings) == MAX_FINDING_RULES
    assert record.findings["SEC001"] == 3
    assert sum(record.findings.values()) + record.findings_other == 3 + MAX_FINDING_RULES + 10


def test_the_release_map_and_the_waiting_list_stay_bounded():
    """Only the last MAX_RELEASES releases are mapped; past MAX_PENDING early events the oldest are dropped and counted."""
    feed = Feed()
    for n in range(MAX_RELEASES + 20):
        feed.propose(f"rel-{n}")
    assert len(feed.state.releases) == MAX_RELEASES
    assert "rel-0" not in feed.state.releases and f"rel-{MAX_RELEASES + 19}" in feed.state.releases
    for n in range(MAX_PENDING + 7):
        feed.decide(f"orphan-{n}", "blocked")
    assert len(feed.state.pending) == MAX_PENDING
    assert feed.state.unattributed == 7


def test_past_max_services_the_one_idle_longest_is_forgotten():
    """A new service beyond MAX_SERVICES pushes out the one changed longest ago, not a busy one."""
    feed = Feed()
    for n in range(MAX_SERVICES):
        feed.release(f"rel-{n}", service=f"svc-{n}")
    feed.release("rel-again", service="svc-0")  # svc-0 is busy again: svc-1 is now idle longest
    feed.release("rel-new", service="svc-new")
    assert len(feed.state.services) == MAX_SERVICES
    assert "svc-1" not in feed.state.services and "svc-0" in feed.state.services
    assert feed.state.services_forgotten == 1


def test_a_long_service_name_is_clipped_and_still_one_service():
    """Names are kept to MAX_NAME_CHARS; two proposals of the same long name are one service."""
    feed = Feed()
    name = "s" * 300
    feed.release("rel-1", service=name)
    feed.release("rel-2", service=name)
    (record,) = feed.state.services.values()
    assert len(record.name) == MAX_NAME_CHARS and record.decided.total == 2


def test_the_largest_state_the_bounds_allow_fits_one_kv_value():
    """Every list full and every id at its longest: still under MAX_STATE_BYTES (< 1 MiB)."""
    long_id, long_rule = "r" * 200, "x" * 64
    decision = Decision(
        release_id=long_id,
        digest="d" * 12,
        outcome=Outcome.ESCALATED,
        decided_at=T0,
        rules=[long_rule] * MAX_RULES_PER_DECISION,
        critical=10**6,
        findings=10**6,
        cost_usd=123456.123456,
    )
    record = ServiceRecord(
        name="n" * MAX_NAME_CHARS,
        proposed=10**9,
        reviews=10**9,
        cost_usd=10**9 + 0.123456,
        tokens=10**12,
        recent=[decision] * RECENT,
        open_escalations=[Escalation(release_id=long_id, digest="d" * 12, escalated_at=T0)] * MAX_OPEN_ESCALATIONS,
        escalations_dropped=10**9,
        findings={f"{long_rule[:-3]}{n:03}": 10**9 for n in range(MAX_FINDING_RULES)},
        findings_other=10**9,
        risk=RiskLevel.HIGH,
        risk_reasons=["x" * 60] * 3,
        first_seen=T0,
        last_seen=T0,
    )
    early = Pending(
        release_id=long_id,
        kind="outcome",
        at="MESH_OUTCOMES:" + "9" * 19,
        time=T0,
        decision=decision,  # the larger of the two kinds (a review's facts are smaller)
        reason="y" * 200,
        cause="c" * 256,
    )
    state = StewardState(
        services={f"{'k' * 40}={n:012}": record for n in range(MAX_SERVICES)},
        releases={f"{long_id[:-4]}{n:04}": "n" * MAX_NAME_CHARS for n in range(MAX_RELEASES)},
        pending=[early] * MAX_PENDING,
        applied=10**12,
        unattributed=10**9,
        services_forgotten=10**9,
        as_of=T0,
    )
    size = len(state.model_dump_json())
    assert size <= MAX_STATE_BYTES < KV_VALUE_LIMIT, f"{size} bytes"


def test_a_long_run_of_ordinary_traffic_stays_far_below_the_bound():
    """A thousand releases over a dozen services: a state of tens of kilobytes."""
    state = StewardState()
    for n in range(1000):
        release, service = f"rel-{n}", f"service-{n % 12}"
        apply_proposal(state, proposal(release, service), at("E", n))
        apply_review(state, review(release, f"SEC{n % 19:03}"), at("R", n))
        apply_outcome(state, outcome(release, ("approved", "blocked", "escalated")[n % 3], "SEC001"), at("O", n))
    assert len(state.model_dump_json()) < 200 * 1024
    assert state.as_of == T0 + timedelta(seconds=999)
