"""A toy daemon agent: running totals per key, for the daemon bench and the daemon tests.

It applies `Added` events from `<ns>.events.tally.added` and publishes `Reached` on
`<ns>.events.tally.reached` each time a key's total passes a multiple of ten. Its state carries a
digest chained over the sequence of every event applied, so a missed, doubled or reordered event
shows: compare it with `replay(events)`, the same function run over the stream.

Run: `python -m bus.ops.bench.tally` (MESH_NATS_URL, MESH_NAMESPACE, MESH_HTTP_PORT;
MESH_TALLY_CHECKPOINT_EVERY, MESH_TALLY_CHUNK_BYTES). `GET /tally` shows its state and role.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from bus.http import json_endpoint
from bus.runtime import Agent
from bus.settings import BusSettings
from bus.stateful import Effect, Position

NAME = "tally"


class TallySettings(BusSettings):
    tally_checkpoint_every: int = Field(default=1, ge=1, description="Events between checkpoints.")
    tally_checkpoint_seconds: float | None = Field(default=None, gt=0, description="Seconds between checkpoints.")
    tally_chunk_bytes: int | None = Field(default=None, ge=64, description="Largest checkpoint value (tests).")
    tally_padding: int = Field(default=0, ge=0, description="Bytes of filler in the state (a large state).")


class Added(BaseModel):
    key: str = Field(description="What is counted.", examples=["apples"])
    amount: int = Field(description="How much to add.", examples=[3])


class Reached(BaseModel):
    key: str = Field(description="The key whose total passed a multiple of ten.", examples=["apples"])
    total: int = Field(description="Its total now.", examples=[12])
    seq: int = Field(description="Stream sequence of the event that took it there.", examples=[41])


class Tally(BaseModel):
    totals: dict[str, int] = Field(default_factory=dict)
    events: int = 0
    digest: str = ""  # chained over the stream sequence of each event applied, in order
    reached: int = 0
    padding: str = ""


def added_subject(namespace: str) -> str:
    return f"{namespace}.events.tally.added"


def reached_subject(namespace: str) -> str:
    return f"{namespace}.events.tally.reached"


def add(state: Tally, event: Added, at: Position, *, namespace: str) -> list[Effect]:
    """Pure: the state after `event`, and a `Reached` when a multiple of ten was passed."""
    before = state.totals.get(event.key, 0)
    after = before + event.amount
    state.totals[event.key] = after
    state.events += 1
    state.digest = hashlib.sha256(f"{state.digest}:{at.seq}".encode()).hexdigest()[:16]
    if after // 10 <= before // 10:
        return []
    state.reached += 1
    reached = Reached(key=event.key, total=after, seq=at.seq)
    return [Effect(reached, reached_subject(namespace), msg_id=f"tally-reached-{at.stream}-{at.seq}")]


def replay(events: Iterable[tuple[int, Added]], *, namespace: str, stream: str) -> tuple[Tally, list[Effect]]:
    """The state and effects that applying `(seq, event)` in order to a fresh state gives."""
    state, effects = Tally(), []
    for seq, event in events:
        effects += add(state, event, Position(stream, seq, datetime.now(UTC)), namespace=namespace)
    return state, effects


def build(settings: TallySettings) -> Agent:
    agent = Agent(NAME, settings=settings, description="Keeps running totals per key (a toy daemon agent).")
    s = settings.subjects
    agent.stateful(
        Tally,
        checkpoint_every=settings.tally_checkpoint_every,
        checkpoint_seconds=settings.tally_checkpoint_seconds,
        chunk_bytes=settings.tally_chunk_bytes,
    )
    agent.publishes(reached_subject(settings.namespace), Reached)

    @agent.applies(stream=s.events_stream, subject=added_subject(settings.namespace), model=Added)
    def on_added(tally: Tally, event: Added, at: Position) -> list[Effect]:
        if settings.tally_padding and not tally.padding:
            tally.padding = "x" * settings.tally_padding
        return add(tally, event, at, namespace=settings.namespace)

    return agent


def http_app(agent: Agent):
    async def tally(scope: dict) -> tuple[int, dict]:
        state = agent.daemon
        return 200, {"role": state.role, "applied": state.applied, "tally": state.current.model_dump()}

    return agent.build_app(routes=[("/tally", json_endpoint(tally))])


if __name__ == "__main__":
    import uvicorn

    settings = TallySettings()
    uvicorn.run(http_app(build(settings)), host=settings.http_host, port=settings.http_port, log_level="warning")
