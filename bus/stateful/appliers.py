"""What a daemon agent declares: the functions that change its state, one per (stream, subject),
and what they return.

An applier is pure: `apply(state, event, at) -> list[Effect]` mutates `state` in place and says
what to publish, from nothing but its arguments — no clock, no I/O, no randomness — so that
replaying the same events onto the same checkpoint gives the same state and the same effects.
That is what lets the runtime replay after a crash, and undo a half-applied event by replaying.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

StateT = TypeVar("StateT", bound=BaseModel)


@dataclass(frozen=True)
class Position:
    """Where an event sits: its stream, its sequence there, and when the stream stored it."""

    stream: str
    seq: int
    time: datetime

    def stored_order(self) -> tuple[datetime, str, int]:
        """Sorts events of several streams in the order the server stored them (ties: by stream
        name): the order the runtime applies a backlog in (bus/stateful/merge.py)."""
        return (self.time, self.stream, self.seq)


@dataclass(frozen=True)
class Effect:
    """A message an applier wants published. The runtime publishes it only once the state that
    produced it is checkpointed, with `msg_id` as its `Nats-Msg-Id`: derive it from the event
    (`f"risk-{service}-{at.seq}"`), never from a clock, so a replay produces the same id."""

    model: BaseModel
    subject: str
    msg_id: str


Apply = Callable[[Any, Any, Position], "list[Effect] | None"]


@dataclass(frozen=True)
class Applier:
    """`apply` for `model` messages on `subject` (a filter, wildcards allowed) of `stream`."""

    stream: str
    subject: str
    model: type[BaseModel]
    apply: Apply

    def matches(self, subject: str) -> bool:
        return subject_matches(self.subject, subject)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` is one token, a final `>` is one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def replay(
    model: type[StateT], appliers: list[Applier], events: Iterable[tuple[Position, str, bytes]]
) -> tuple[StateT, list[Effect]]:
    """What applying `events` — (position, subject, payload), in the order given — to `model()`
    gives: the state and every effect, as the runtime applies them (an event that does not
    validate is skipped; one whose applier raises is skipped and leaves the state as it was)."""
    state, effects = model(), []
    for at, subject, data in events:
        applier = next((a for a in appliers if a.stream == at.stream and a.matches(subject)), None)
        if applier is None:
            continue
        try:
            event = applier.model.model_validate_json(data)
        except ValidationError:
            continue
        before = state.model_copy(deep=True)
        try:
            effects += applier.apply(state, event, at) or []
        except Exception:  # noqa: BLE001 - as the runtime does: skip it, keep the state sound
            state = before
    return state, effects
