"""Effects restored from a checkpoint go out once: what the stream holds already is skipped."""

from __future__ import annotations

from bus.errors import LeaseLost
from bus.stateful.checkpoint import StoredEffect
from bus.stateful.outbox import Outbox
from tests.bus.stateful.support import Counted


def effect(settings, n: int, subject: str = "a") -> StoredEffect:
    return StoredEffect(subject=f"{settings.namespace}.events.t.{subject}", msg_id=f"e-{n}", data=f'{{"n":{n}}}')


async def test_restored_effects_the_stream_holds_are_not_published_again(nc, js, settings):
    """Of five pending effects on two subjects, the first three went out before a crash: a core
    NATS subscriber sees the other two once each, and nothing twice."""
    seen = await Counted.on(nc, f"{settings.namespace}.events.t.>")

    async def publish(data: bytes, subject: str, headers: dict) -> None:
        await js.publish(subject, data, headers=headers)

    outbox = Outbox(js=js, publish=publish, stream_for=settings.subjects.stream_for, log=None)
    effects = [effect(settings, 1, "a"), effect(settings, 2, "b"), effect(settings, 3, "a")]
    effects += [effect(settings, 4, "b"), effect(settings, 5, "a")]
    outbox.pending = list(effects[:3])
    await outbox.flush(lambda: None)
    assert await outbox.published_prefix(effects) == 3

    outbox.pending = list(effects)  # a new instance restores the checkpoint that still lists all five
    await outbox.flush(lambda: None, restored=True)
    await nc.flush()
    assert seen.ids() == ["e-1", "e-2", "e-3", "e-4", "e-5"]


async def test_no_effect_leaves_once_the_lease_is_gone(nc, js, settings):
    """The lease is checked before every publish: a stale active publishes nothing more."""
    published: list[str] = []

    async def publish(data: bytes, subject: str, headers: dict) -> None:
        published.append(headers["Nats-Msg-Id"])

    def gone() -> None:
        raise LeaseLost("expired")

    outbox = Outbox(js=js, publish=publish, stream_for=settings.subjects.stream_for, log=None)
    outbox.pending = [effect(settings, 1)]
    try:
        await outbox.flush(gone)
    except LeaseLost:
        pass
    assert published == [] and len(outbox.pending) == 1
