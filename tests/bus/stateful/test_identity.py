"""A daemon agent's NATS identity allows what its declarations need, and nothing of anyone else's."""

from __future__ import annotations

import pytest

from bus.ops.bench.daemon import publish_added, stored_reached
from bus.ops.bench.tally import Added, added_subject, reached_subject
from bus.ops.identities import generate
from tests.bus.stateful.support import tally, until


def test_a_daemon_may_follow_its_streams_and_write_only_its_own_keys(settings):
    """Consumers on its own filter only (no pulling from or deleting anyone's), flow control
    answers, the last message on its effect subjects, and its own keys of the daemons bucket."""
    s, ns = settings.subjects, settings.namespace
    allowed = tally(settings, "i").permissions.publish
    events, bucket = s.events_stream, s.daemons_bucket
    assert f"$JS.API.CONSUMER.CREATE.{events}.*.{added_subject(ns)}" in allowed
    assert f"$JS.FC.{events}.>" in allowed
    assert f"$JS.API.STREAM.MSG.GET.{events}" in allowed
    assert f"$KV.{bucket}.tally.>" in allowed and f"$KV.{bucket}.>" not in allowed
    assert reached_subject(ns) in allowed and added_subject(ns) not in allowed
    forbidden = (
        "CONSUMER.DELETE",
        "CONSUMER.MSG.NEXT",
        "CONSUMER.DURABLE",
        f"CONSUMER.CREATE.{events}.*.{ns}.events.>",
    )
    assert not [p for p in allowed if any(f in p for f in forbidden) and events in p]


async def test_a_daemon_runs_on_its_own_identity(settings, gatekeeper, tmp_path, js, nc):
    """With authorization on, the daemon takes the lease, restores, follows its stream and
    publishes its effects as the `tally` identity."""
    if gatekeeper is None:
        pytest.skip("the shared server is not ours: no identities")
    identities = gatekeeper.admit(
        generate(settings, tmp_path / "ids", services={"tally": tally(settings, "i").permissions})
    )
    seqs = await publish_added(js, settings.namespace, [Added(key="k", amount=4) for _ in range(10)])
    agent = tally(settings, "i", nats_credentials=identities.credential("tally"))
    async with agent.running():
        assert await until(lambda: agent.daemon.applied.get(settings.subjects.events_stream, 0) >= seqs[-1])
        assert agent.daemon.current.totals == {"k": 40}
        assert await until(lambda: stored_reached(js, settings))
    assert [r.total for _, r in await stored_reached(js, settings)] == [12, 20, 32, 40]
