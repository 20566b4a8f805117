"""services/steward/views.py: what the HTTP API answers, from a known state (pure)."""

from __future__ import annotations

from datetime import timedelta

from services.steward.state import StewardState
from services.steward.views import assessment, detail, freshness, listing
from tests.services.steward.events import T0
from tests.services.steward.test_apply import Feed


def busy_feed() -> Feed:
    feed = Feed()
    feed.release("rel-1", "approved", service="search")
    feed.release("rel-2", "blocked", "SEC001", critical=True, service="payments-api")
    feed.release("rel-3", "blocked", "SEC001", critical=True, service="payments-api")
    feed.release("rel-4", "escalated", "CMP004", service="ledger")
    return feed


def test_the_list_puts_the_riskiest_first_with_rates_and_freshness():
    """high, then medium, then low; each with its tally, rates, open escalations and link."""
    feed = busy_feed()
    body = listing(feed.state, active=True, now=feed.state.as_of + timedelta(seconds=2))
    assert [(s["service"], s["risk"]) for s in body["services"]] == [
        ("payments-api", "high"),
        ("ledger", "medium"),
        ("search", "low"),
    ]
    payments = body["services"][0]
    assert payments["decided"] == {"approved": 0, "blocked": 2, "escalated": 0, "total": 2}
    assert payments["block_rate"] == 1.0 and payments["url"] == "/services/payments-api"
    assert body["services"][1]["open_escalations"] == 1
    assert (body["source"], body["age_seconds"], body["count"]) == ("live", 2.0, 3)


def test_one_service_says_why_its_level_is_what_it_is():
    """The detail holds the reasons, the recent decisions newest first, the top findings and an assessment."""
    feed = busy_feed()
    body = detail("payments-api", feed.record("payments-api"))
    assert body["risk"] == "high"
    assert body["risk_reasons"] == ["2 of the last 2 decisions had a critical finding"]  # 2 blocks: not 3
    assert [d["release_id"] for d in body["recent"]] == ["rel-3", "rel-2"]
    assert body["top_findings"] == [{"rule": "SEC001", "reviews": 2}]
    assert body["rates"]["block_rate"] == 1.0 and body["history"] == "/services/payments-api/history"
    assert body["assessment"].startswith("payments-api is at high risk: 2 of the last 2 decisions had a critical")


def test_a_standby_says_its_view_comes_from_a_checkpoint_and_how_old_it_is():
    """On a standby, `source` is `checkpoint` and the age is counted from the last event in it."""
    feed = busy_feed()
    fresh = freshness(feed.state, active=False, now=feed.state.as_of + timedelta(seconds=30))
    assert fresh["source"] == "checkpoint" and fresh["age_seconds"] == 30.0
    assert fresh["as_of"] == feed.state.as_of.isoformat() and fresh["events_applied"] == 12


def test_an_empty_state_has_nothing_and_no_age():
    """Before any event: no services, no as_of."""
    body = listing(StewardState(), active=True, now=T0)
    assert body["services"] == [] and body["as_of"] is None and body["age_seconds"] is None


def test_the_assessment_is_the_same_for_the_same_numbers():
    """Offline and deterministic: the same record gives the same words."""
    assert assessment(busy_feed().record("ledger")) == assessment(busy_feed().record("ledger"))
    feed = Feed()
    feed.propose("rel-1")
    assert assessment(feed.record()) == "payments-api: no release decided yet (1 proposed)."
