"""services/steward/history.py: the history stream searched by service, rule, outcome and time (real NATS)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from contracts.outcomes import Outcome
from services.steward.history import BATCH, History, HistoryQuery, HistoryUnavailable, search


@pytest.fixture
def history(nc, settings) -> History:
    return History(lambda: nc, settings.subjects, max_scan=10_000)


async def test_a_search_returns_one_services_records_newest_first(history, record_history):
    """Only the service asked about, the newest first, at most `limit`."""
    for n in range(5):
        await record_history("payments-api", f"rel-{n}")
        await record_history("search", f"other-{n}")
    page = await history.search("payments-api", HistoryQuery(limit=3))
    assert [r.release_id for r in page.records] == ["rel-4", "rel-3", "rel-2"]
    assert page.scanned == 5 and not page.truncated


async def test_a_search_by_rule_and_outcome_keeps_only_what_matches(history, record_history):
    """`rule` keeps the releases whose findings named it; `outcome` those decided so."""
    await record_history("payments-api", "rel-1", "blocked", "SEC001", "SEC004")
    await record_history("payments-api", "rel-2", "approved")
    await record_history("payments-api", "rel-3", "escalated", "SEC001")
    await record_history("payments-api", "rel-4", "blocked", "CMP002")
    by_rule = await history.search("payments-api", HistoryQuery(rule="SEC001"))
    assert [r.release_id for r in by_rule.records] == ["rel-3", "rel-1"]
    both = await history.search("payments-api", HistoryQuery(rule="SEC001", outcome=Outcome.BLOCKED))
    assert [r.release_id for r in both.records] == ["rel-1"]


async def test_a_search_by_time_starts_at_since_and_stops_at_until(history, record_history):
    """`since` is where the server starts reading; records stored after `until` are not returned."""
    await record_history("payments-api", "old")
    await asyncio.sleep(0.05)
    middle = datetime.now(UTC)
    await record_history("payments-api", "middle")
    await asyncio.sleep(0.05)
    cut = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await record_history("payments-api", "new")
    page = await history.search("payments-api", HistoryQuery(since=middle, until=cut))
    assert [r.release_id for r in page.records] == ["middle"]
    after = await history.search("payments-api", HistoryQuery(since=middle))
    assert [r.release_id for r in after.records] == ["new", "middle"]
    future = await history.search("payments-api", HistoryQuery(since=datetime.now(UTC) + timedelta(hours=1)))
    assert future.records == [] and future.scanned == 0


async def test_a_long_history_is_read_in_batches_and_a_scan_limit_says_truncated(nc, settings, record_history):
    """More records than one batch are all read; past `max_scan` the search stops and says so."""
    for n in range(BATCH + 20):
        await record_history("payments-api", f"rel-{n}", "blocked" if n % 50 == 0 else "approved")
    s = settings.subjects
    args = {"stream": s.history_stream, "subject": s.decision_recorded("payments-api")}
    whole = await search(nc, **args, query=HistoryQuery(outcome=Outcome.BLOCKED, limit=100), max_scan=10_000)
    assert [r.release_id for r in whole.records] == [f"rel-{n}" for n in (250, 200, 150, 100, 50, 0)]
    assert whole.scanned == BATCH + 20 and not whole.truncated
    cut = await search(nc, **args, query=HistoryQuery(limit=5), max_scan=100)
    assert cut.truncated and cut.scanned == 100
    assert [r.release_id for r in cut.records] == [f"rel-{n}" for n in range(99, 94, -1)]


async def test_a_service_with_no_history_has_an_empty_page(history):
    """Nothing recorded: no records, nothing scanned, no error."""
    page = await history.search("nobody", HistoryQuery())
    assert page.records == [] and page.scanned == 0


async def test_a_missing_history_stream_is_unavailable_not_a_hang(nc, settings):
    """A stream that does not exist: a HistoryUnavailable naming what to do, within the timeout."""
    with pytest.raises(HistoryUnavailable, match="mesh provision"):
        await search(nc, stream="NO_SUCH_STREAM", subject="x.>", query=HistoryQuery(), max_scan=10, timeout=0.5)
