"""`mesh chaos --kill steward`: the steward's state after the run, against a replay of its streams.

The steward is a daemon agent (bus/stateful): two instances, one active, SIGKILLed at random while
proposals are reviewed and decided. Once it has checkpointed every event of its streams, its
checkpoint (read from KV) must equal the state a replay of those streams gives — the events in the
order the server stored them, through the steward's own appliers — so no event was missed and none
applied twice; and every effect it published must be in its stream once, and have been seen once
by a core NATS subscriber (which sees every publish, duplicates the stream dropped included).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from bus.ops.dead_letters import read_stream
from bus.ops.settings import MeshSettings
from bus.stateful import Position, replay
from bus.stateful.checkpoint import CheckpointStore

NAME = "steward"
SHOWN = 5  # differences named on the steward's line


@dataclass
class StewardCheck:
    events: int = 0  # events in its streams: what it must have applied
    applied: int = 0  # events its checkpoint says it applied
    state_equal: bool = False
    differences: list[str] = field(default_factory=list)
    effects: int = 0  # effects in the stream
    missing: int = 0  # effects the replay produced that the stream lacks
    unexpected: int = 0  # effects in the stream the replay did not produce
    duplicated: int = 0  # effects stored more than once (same Nats-Msg-Id)
    seen_twice: int = 0  # effects a core NATS subscriber saw more than once

    @property
    def ok(self) -> bool:
        return self.state_equal and not (self.missing or self.unexpected or self.duplicated or self.seen_twice)

    def line(self, kills: int) -> str:
        """`steward: kills=3 events=1500 applied=1500 state_equal=yes effects=504 missing=0 unexpected=0
        duplicated=0 seen_twice=0` (one line)"""
        line = (
            f"steward: kills={kills} events={self.events} applied={self.applied} "
            f"state_equal={'yes' if self.state_equal else 'no'} effects={self.effects} missing={self.missing} "
            f"unexpected={self.unexpected} duplicated={self.duplicated} seen_twice={self.seen_twice}"
        )
        return line + "".join(f"\n  differs: {d}" for d in self.differences[:SHOWN])


@dataclass
class EffectWitness:
    """A core NATS subscriber on the steward's effect subjects, counting message ids."""

    seen: Counter = field(default_factory=Counter)

    async def start(self, nc, subject: str) -> None:
        async def saw(msg) -> None:
            self.seen[(msg.headers or {}).get("Nats-Msg-Id", "")] += 1

        await nc.subscribe(subject, cb=saw)


async def check_steward(js, settings: MeshSettings, witness: EffectWitness, *, timeout: float = 60.0) -> StewardCheck:
    """Wait until the steward's checkpoint covers every event of its streams; compare."""
    from services.index import SERVICES  # the operator wing may know the services

    agent = SERVICES[NAME].agent(settings)
    handle, produces = agent.daemon, [subject for subject, _ in agent.produces]
    events = []
    for stream, filters in handle.streams.items():
        for subject in filters:
            async for msg in read_stream(js, stream, subject):
                at = Position(stream, msg.metadata.sequence.stream, msg.metadata.timestamp)
                events.append((at, msg.subject, msg.data))
    events.sort(key=lambda event: event[0].stored_order())
    last = {at.stream: at.seq for at, _, _ in events}
    store = CheckpointStore(js, bucket=settings.subjects.daemons_bucket, agent=NAME, chunk_bytes=1)
    deadline = time.monotonic() + timeout
    while True:
        checkpoint, _ = await store.read()
        positions = checkpoint.positions if checkpoint else {}
        if all(positions.get(stream, 0) >= seq for stream, seq in last.items()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    expected, effects = replay(handle.model, handle.appliers, events)
    check = StewardCheck(events=len(events))
    if checkpoint is None:
        check.differences.append("no checkpoint at all")
        return check
    state = handle.model.model_validate_json(checkpoint.state)
    check.applied = sum(1 for at, _, _ in events if positions.get(at.stream, 0) >= at.seq)
    check.differences = _differences(_plain(state.model_dump(mode="json")), _plain(expected.model_dump(mode="json")))
    missing = [stream for stream, seq in last.items() if positions.get(stream, 0) < seq]
    if missing:
        check.differences.insert(0, f"not caught up within {timeout:.0f} s on {', '.join(missing)}")
    check.state_equal = not check.differences

    stored: Counter = Counter()
    for subject in produces:
        async for msg in read_stream(js, settings.subjects.stream_for(subject), subject):
            stored[(msg.headers or {}).get("Nats-Msg-Id", "")] += 1
    check.effects = sum(stored.values())
    produced = {effect.msg_id for effect in effects}
    check.missing, check.unexpected = len(produced - set(stored)), len(set(stored) - produced)
    check.duplicated = sum(n - 1 for n in stored.values() if n > 1)
    check.seen_twice = sum(n - 1 for n in witness.seen.values() if n > 1)
    return check


def _plain(value, places: int = 6):
    """JSON values with floats rounded: sums of costs may differ in their last bits when the same
    reviews were added in another order."""
    if isinstance(value, float):
        return round(value, places)
    if isinstance(value, dict):
        return {k: _plain(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, places) for v in value]
    return value


def _differences(have, want, path: str = "") -> list[str]:
    if isinstance(have, dict) and isinstance(want, dict):
        found = []
        for key in sorted(set(have) | set(want)):
            where = f"{path}.{key}" if path else str(key)
            if key not in have or key not in want:
                found.append(f"{where}: only in the {'replay' if key in want else 'checkpoint'}")
            else:
                found += _differences(have[key], want[key], where)
        return found
    if have != want:
        return [f"{path}: checkpoint {str(have)[:80]} / replay {str(want)[:80]}"]
    return []
