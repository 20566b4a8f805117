"""A daemon agent's state against a real nats-server: applied once, restored, handed over, fenced.

The agents run in this process (the toy daemon of bus/ops/bench/tally.py); tests/e2e/daemons
runs them as processes and kills them for real.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from bus.ops.bench.daemon import checkpointed, publish_added, stored_added, stored_reached
from bus.ops.bench.tally import Added, reached_subject, replay
from bus.runtime import Agent
from bus.stateful import DAEMON_EXTENSION, Effect, Position
from tests.bus.stateful.support import Counted, crash, tally, until


def added(n: int, start: int = 0) -> list[Added]:
    return [Added(key=f"k{i % 4}", amount=(i % 7) + 1) for i in range(start, start + n)]


async def expected(js, settings):
    """The state and effects a replay of the whole stream gives."""
    return replay(
        await stored_added(js, settings), namespace=settings.namespace, stream=settings.subjects.events_stream
    )


def caught_up(agent: Agent, seq: int) -> bool:
    return agent.daemon.active and agent.daemon.applied.get(agent.settings.subjects.events_stream, 0) >= seq


@pytest.mark.parametrize("every", [1, 25])
async def test_after_a_crash_every_event_is_applied_exactly_once(nc, js, settings, every):
    """Crash an instance half-way (no last checkpoint, lease left to expire); the next one
    replays what came after the checkpoint: the state equals a replay of the stream, and each
    effect was published once, in the stream and to a core NATS subscriber."""
    seen = await Counted.on(nc, reached_subject(settings.namespace))
    first_seqs = await publish_added(js, settings.namespace, added(80))
    first = tally(settings, "first", tally_checkpoint_every=every)
    async with first.running():
        assert await until(lambda: first.daemon.applied.get(settings.subjects.events_stream, 0) >= first_seqs[40])
        await crash(first)
    last = (await publish_added(js, settings.namespace, added(60, start=80)))[-1]
    second = tally(settings, "second", tally_checkpoint_every=every)
    async with second.running():
        assert await until(lambda: caught_up(second, last) and not second.daemon._read_since)
        state, effects = await expected(js, settings)
        assert second.daemon.current == state
        assert (await checkpointed(js, settings))[0] == state
        await nc.flush()
        stored = [msg_id for msg_id, _ in await stored_reached(js, settings)]
        assert stored == [e.msg_id for e in effects]
        assert seen.ids() == stored  # published once each: none again after the restore


async def test_a_clean_stop_hands_over_to_the_standby_at_once(js, settings):
    """Two instances: one active, one standby; the active one stops (last checkpoint, lease given
    up) and the standby continues from where it stopped, long before the lease would expire."""
    last = (await publish_added(js, settings.namespace, added(30)))[-1]
    first, second = (
        tally(settings, "first", daemon_lease_seconds=30),
        tally(settings, "second", daemon_lease_seconds=30),
    )
    first_running = first.running()
    await first_running.__aenter__()
    async with second.running():
        try:
            assert await until(lambda: caught_up(first, last))
            assert await until(lambda: second.daemon.status()["daemon"].get("active_instance") == "first")
            assert not second.daemon.active
        finally:
            await first_running.__aexit__(None, None, None)
        last = (await publish_added(js, settings.namespace, added(10, start=30)))[-1]
        assert await until(lambda: caught_up(second, last), timeout=3.0), "the standby did not take over"
        state, _ = await expected(js, settings)
        assert second.daemon.current == state


async def test_a_stale_active_instance_is_fenced_and_steps_down(nc, js, settings):
    """The active instance's lease lapses under it (as after SIGSTOP); another takes over and
    writes its checkpoint: the old one's next write fails, it applies and publishes nothing more,
    and says it stepped down. No update lost, none doubled."""
    seen = await Counted.on(nc, reached_subject(settings.namespace))
    last = (await publish_added(js, settings.namespace, added(40)))[-1]
    old, new = tally(settings, "old", daemon_lease_seconds=30), tally(settings, "new", daemon_lease_seconds=30)
    async with old.running():
        assert await until(lambda: caught_up(old, last))
        async with new.running():
            assert await until(lambda: new.daemon.status()["daemon"].get("active_instance") == "old")
            kv = await js.key_value(settings.subjects.daemons_bucket)
            await kv.delete("tally.lease")  # the server forgets the old lease; the old holder does not know
            assert await until(lambda: new.daemon.active)
            last = (await publish_added(js, settings.namespace, added(40, start=40)))[-1]
            assert await until(lambda: caught_up(new, last) and not old.daemon.active)
            status = old.daemon.status()
            assert status["role"] == "standby" and status["daemon"]["stepped_down"]["reason"]
            state, effects = await expected(js, settings)
            assert new.daemon.current == state
            await nc.flush()
            stored = [msg_id for msg_id, _ in await stored_reached(js, settings)]
            assert stored == [e.msg_id for e in effects] and seen.ids() == stored


class Items(BaseModel):
    items: list[str] = []


class Named(BaseModel):
    name: str


async def test_a_bad_event_is_skipped_and_a_failing_applier_changes_nothing(js, settings):
    """An event that does not validate is skipped; an applier that raises half-way leaves the
    state as it was before that event (and the events after it still apply)."""
    agent = Agent("items", settings=settings.model_copy(update={"instance_id": "only"}))
    agent.stateful(Items, checkpoint_every=10)
    subject = f"{settings.namespace}.events.items.named"

    @agent.applies(stream=settings.subjects.events_stream, subject=subject, model=Named)
    def name(state: Items, event: Named, at: Position) -> list[Effect]:
        state.items.append(event.name)
        if event.name == "boom":
            raise RuntimeError("a bug")
        return []

    for data in [b'{"name": "a"}', b"not json", b'{"name": "boom"}', b'{"nom": "x"}', b'{"name": "b"}']:
        last = (await js.publish(subject, data)).seq
    async with agent.running():
        assert await until(lambda: caught_up(agent, last) and not agent.daemon._read_since)
        assert agent.daemon.current.items == ["a", "b"]


async def test_a_state_too_large_for_one_value_is_checkpointed_in_chunks(js, settings):
    """A 50 kB state with values of at most 4 kB: split into chunks, restored whole by the next instance."""
    last = (await publish_added(js, settings.namespace, added(20)))[-1]
    big = {"tally_padding": 50_000, "tally_chunk_bytes": 4096}
    first = tally(settings, "first", **big)
    async with first.running():
        assert await until(lambda: caught_up(first, last) and not first.daemon._read_since)
        checkpoint = first.daemon.status()["daemon"]["checkpoint"]
        assert checkpoint["chunks"] >= 13 and checkpoint["bytes"] > 50_000
    state, _ = await checkpointed(js, settings)
    assert len(state.padding) == 50_000
    last = (await publish_added(js, settings.namespace, added(5, start=20)))[-1]
    second = tally(settings, "second", **big)
    async with second.running():
        assert await until(lambda: caught_up(second, last))
        expected_state, _ = await expected(js, settings)
        expected_state.padding = "x" * 50_000
        assert second.daemon.current == expected_state


async def test_readiness_and_the_card_say_which_instance_is_active(js, settings):
    """`/readyz` and the instance's own card carry its role; the standby names the active one."""
    first, second = tally(settings, "first"), tally(settings, "second")
    async with first.running(), second.running():
        assert await until(lambda: first.daemon.active or second.daemon.active)
        active, standby = (first, second) if first.daemon.active else (second, first)
        assert await until(lambda: standby.daemon.status()["daemon"].get("active_instance"))
        status, body = await active._readyz({})
        assert status == 200 and body["role"] == "active"
        status, body = await standby._readyz({})
        assert status == 200 and body["role"] == "standby"
        assert body["daemon"]["active_instance"] == active.settings.instance_id
        for agent, role in ((active, "active"), (standby, "standby")):
            extension = next(e for e in agent.instance_card.capabilities.extensions if e.uri == DAEMON_EXTENSION)
            assert extension.params["role"] == role
        shared = next(e for e in active.card.capabilities.extensions if e.uri == DAEMON_EXTENSION)
        assert "role" not in shared.params  # the card in the registry is every instance's


class Order(BaseModel):
    seen: list[str] = []


async def test_a_backlog_on_several_streams_is_applied_in_stored_order(js, settings):
    """Events waiting in two streams are applied in the order the server stored them, across
    the streams too (a proposal before the reviews of it), not one stream's backlog first."""
    s = settings.subjects
    agent = Agent("order", settings=settings.model_copy(update={"instance_id": "only"}))
    agent.stateful(Order)
    subjects = {s.events_stream: f"{settings.namespace}.events.order.x", s.reviews_stream: f"{s.namespace}.reviews.x"}

    for stream, subject in subjects.items():

        @agent.applies(stream=stream, subject=subject, model=Named)
        def note(state: Order, event: Named, at: Position) -> list[Effect]:
            state.seen.append(event.name)
            return []

    published = []
    for n in range(400):
        stream = [s.events_stream, s.reviews_stream][(n // 100) % 2]  # runs of a hundred on each stream
        await js.publish(subjects[stream], Named(name=f"{n}").model_dump_json().encode())
        published.append(f"{n}")
    async with agent.running():
        assert await until(lambda: len(agent.daemon.current.seen) == 400)
        assert agent.daemon.current.seen == published
