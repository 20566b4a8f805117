"""contracts/digests.py and contracts/alerts.py: message ids that make redelivered ticks harmless."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.alerts import AlertKind, alert_msg_id
from contracts.digests import digest_delivery_msg_id, digest_event_id, digest_msg_id
from contracts.subjects import Subjects

END = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
START = END - timedelta(days=1)


def test_a_digest_is_named_by_its_window_and_its_delivery_by_its_tick():
    """The same window gives the same message and event id; another window another; the delivery
    record's id follows the tick, whatever characters the tick id holds."""
    assert digest_msg_id(START, END) == digest_msg_id(START, END) != digest_msg_id(START, END + timedelta(hours=1))
    assert digest_event_id(START, END) == digest_event_id(START, END) and len(digest_event_id(START, END)) == 32
    assert digest_delivery_msg_id("digest:2026-11-22T09:00:00Z") != digest_delivery_msg_id("digest:manual:1")


def test_an_alert_is_named_by_its_check_and_kind():
    """One id per (check, kind): two kinds in one check differ, the same kind in two checks differs."""
    ids = {alert_msg_id(check, kind) for check in ("check:1", "check:2") for kind in AlertKind}
    assert len(ids) == 2 * len(AlertKind)


def test_digests_and_alerts_have_streams_of_their_own():
    """`mesh.digests.…` is stored by MESH_DIGESTS and `mesh.alerts.…` by MESH_ALERTS; a tick id
    becomes one subject token."""
    s = Subjects("mesh")
    assert s.stream_for(s.digest_published) == s.stream_for(s.digest_delivered("a.b c")) == "MESH_DIGESTS"
    assert s.stream_for(s.alert("dead_letters")) == "MESH_ALERTS"
    assert s.digest_delivered("digest:2026-11-22T09:00:00.000Z").count(".") == 3
