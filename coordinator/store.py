"""Rounds in a JetStream KV bucket, changed only by compare-and-set.

`mutate` reads a round, applies a transition, and writes it back only if nobody wrote in
between (the KV revision still matches); otherwise it re-reads and tries again. That makes a
transition atomic across coordinator replicas without any lock.

Within one process, changes of the same round take turns (a lock per round): two reviews of
one round handled at once would otherwise both write, one would lose the compare-and-set and
read and write again. Across replicas the compare-and-set alone keeps them apart.

The store remembers its own last write of recent rounds (value and revision), so the next
change of a round it just wrote skips the read: the write is still a compare-and-set on that
revision, and if anyone else wrote since, it fails and the round is re-read. A transition
that finds nothing to do is only believed on a freshly read round.

With tracing on, each `mutate` is a `kv.update <bucket>` event on the message's span, when it
ended: how many compare-and-set attempts it took (`mesh.kv.attempts`), how long (`mesh.kv.seconds`,
the wait for the round's turn included) and what it did. An event, not a span of its own: spans
are what tracing costs, and a proposal makes four of these.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from bus.telemetry import Telemetry
from contracts.subjects import subject_token
from coordinator.rounds import Round, RoundState, new_round

Transition = Callable[[Round], bool]

_MAX_ATTEMPTS = 50
# A round this large keeps only the verdicts and the most severe findings of its reviews, so no
# crowd of reviewers can push it towards the KV value limit (1 MiB) and lose its outcome.
COMPACT_FROM_BYTES = 256 * 1024
_REMEMBERED = 4096  # rounds whose last write is kept; older ones are simply read again


def round_key(release_id: str, digest: str) -> str:
    """`<release>.<digest>`: one key per revision (KV keys may hold dots; tokens never do)."""
    return f"{subject_token(release_id)}.{subject_token(digest)}" if digest else subject_token(release_id)


class Mutation(NamedTuple):
    """What one `mutate` did: the round as stored, whether it changed, and whether that very
    write decided it (then nobody can have published its outcome yet)."""

    round: Round
    changed: bool
    decided: bool


class RoundConflict(RuntimeError):
    """A round kept changing under us; the message will be redelivered and retried."""


class RoundStore:
    def __init__(self, kv: KeyValue, *, remember: int = _REMEMBERED, telemetry: Telemetry | None = None) -> None:
        self._kv = kv
        self._telemetry = telemetry or Telemetry()
        self._span = f"kv.update {getattr(kv, '_name', 'rounds')}"  # nats-py keeps the bucket's name there
        self._written: OrderedDict[str, tuple[bytes, int]] = OrderedDict()  # key -> (value, revision)
        self._remember = remember
        self._turns: dict[str, asyncio.Lock] = {}  # per round, only while someone changes it
        self._waiting: Counter[str] = Counter()

    async def get(self, release_id: str, digest: str) -> Round | None:
        round_, _ = await self._load(round_key(release_id, digest))
        return round_

    async def mutate(
        self, release_id: str, digest: str, transition: Transition, *, likely_new: bool = False
    ) -> Mutation:
        """Apply `transition` to the round of one revision atomically; returns what happened.

        `likely_new` skips the first read of a round this store has not seen (a proposal's
        round usually does not exist yet): the write is then a create, which fails if the
        round exists after all, and the round is read and the transition applied again.
        """
        key = round_key(release_id, digest)
        turn = self._turns.setdefault(key, asyncio.Lock())
        self._waiting[key] += 1
        started = time.perf_counter()
        try:
            async with turn:
                return await self._mutate(key, release_id, digest, transition, likely_new, started)
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._turns[key]

    async def _mutate(
        self, key: str, release_id: str, digest: str, transition: Transition, likely_new: bool, started: float
    ) -> Mutation:
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            remembered = self._written.pop(key, None)  # taken: a concurrent change reads instead
            if remembered is not None:
                round_, revision = Round.model_validate_json(remembered[0]), remembered[1]
            elif likely_new:
                round_, revision, likely_new = new_round(release_id, digest), None, False
                remembered = (b"", 0)  # assumed, not read: "nothing to do" is checked below
            else:
                current, revision = await self._load(key)
                round_ = current or new_round(release_id, digest)
            was_decided = round_.state == RoundState.DECIDED
            if not transition(round_):
                if remembered is not None:
                    continue  # "nothing to do" may be stale: ask the bucket
                return self._did(Mutation(round_, changed=False, decided=False), key, attempt, revision, started)
            data = round_.model_dump_json().encode()
            if len(data) > COMPACT_FROM_BYTES and round_.compact():
                data = round_.model_dump_json().encode()
            try:
                if revision is None:
                    revision = await self._kv.create(key, data)
                else:
                    revision = await self._kv.update(key, data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # someone else wrote first: re-read and re-apply
            if not round_.outcome_published:  # a finished round is rarely touched again
                self._written[key] = (data, revision)
                if len(self._written) > self._remember:
                    self._written.popitem(last=False)
            decided = not was_decided and round_.state == RoundState.DECIDED
            return self._did(Mutation(round_, changed=True, decided=decided), key, attempt, revision, started)
        self._telemetry.event(
            self._span, {"mesh.kv.attempts": _MAX_ATTEMPTS, "mesh.kv.seconds": round(time.perf_counter() - started, 6)}
        )
        raise RoundConflict(f"round {release_id!r} changed {_MAX_ATTEMPTS} times while we tried to update it")

    def _did(self, mutation: Mutation, key: str, attempts: int, revision: int | None, started: float) -> Mutation:
        if self._telemetry.traces:  # no attributes built for the no-op
            self._telemetry.event(
                self._span,
                {
                    "mesh.kv.key": key,
                    "mesh.kv.attempts": attempts,
                    "mesh.kv.seconds": round(time.perf_counter() - started, 6),
                    "mesh.kv.revision": revision or 0,
                    "mesh.kv.changed": mutation.changed,
                    "mesh.round.state": mutation.round.state.value,
                    "mesh.round.decided": mutation.decided,
                },
            )
        return mutation

    async def _load(self, key: str) -> tuple[Round | None, int | None]:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None, None
        if entry.value is None:  # deleted or expired key (limit markers)
            return None, None
        return Round.model_validate_json(entry.value), entry.revision
