"""Rounds in a JetStream KV bucket, changed only by compare-and-set.

`mutate` reads a round, applies a transition, and writes it back only if nobody wrote in
between (the KV revision still matches); otherwise it re-reads and tries again. That makes a
transition atomic across coordinator replicas without any lock.
"""

from __future__ import annotations

from collections.abc import Callable

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from contracts.subjects import subject_token
from coordinator.rounds import Round, new_round

Transition = Callable[[Round], bool]

_MAX_ATTEMPTS = 50


class RoundConflict(RuntimeError):
    """A round kept changing under us; the message will be redelivered and retried."""


class RoundStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, release_id: str) -> Round | None:
        round_, _ = await self._load(release_id)
        return round_

    async def mutate(self, release_id: str, transition: Transition) -> tuple[Round, bool]:
        """Apply `transition` atomically; returns the stored round and whether it changed."""
        key = subject_token(release_id)
        for _ in range(_MAX_ATTEMPTS):
            current, revision = await self._load(release_id)
            round_ = current or new_round(release_id)
            if not transition(round_):
                return round_, False
            data = round_.model_dump_json().encode()
            try:
                if revision is None:
                    await self._kv.create(key, data)
                else:
                    await self._kv.update(key, data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # someone else wrote first: re-read and re-apply
            return round_, True
        raise RoundConflict(f"round {release_id!r} changed {_MAX_ATTEMPTS} times while we tried to update it")

    async def _load(self, release_id: str) -> tuple[Round | None, int | None]:
        try:
            entry = await self._kv.get(subject_token(release_id))
        except KeyNotFoundError:
            return None, None
        if entry.value is None:  # deleted or expired key (limit markers)
            return None, None
        return Round.model_validate_json(entry.value), entry.revision

    async def open_rounds(self) -> list[Round]:
        """Every round not yet decided (for `mesh status` and deadline recovery)."""
        rounds: list[Round] = []
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return rounds
        for key in keys:
            entry = await self._kv.get(key)
            if entry.value:
                round_ = Round.model_validate_json(entry.value)
                if round_.outcome is None:
                    rounds.append(round_)
        return rounds
