"""A daemon's checkpoint in KV: its state, the stream positions applied to it, and the effects
not yet published — written together, with compare-and-set, so they never disagree.

Layout in the daemons bucket (`<ns>_daemons`), per agent:

    <agent>.lease                the lease (bus/stateful/lease.py), with a TTL
    <agent>.checkpoint           header line, then (inline) the body: a meta line and the state
    <agent>.chunk.<id>.<n>       the body in pieces, when it is larger than one value may be

The header names who wrote it (`holder`) and under which lease (`fence`, the lease's revision
when acquired). Every write expects the revision it last read or wrote: a writer whose checkpoint
changed under it (a new active instance took over) fails, and stops (LeaseLost).

A body too large for one KV value (the server's max_payload, 1 MiB by default) is split, never
truncated: the chunks go first under a fresh id, then the header that names them (the commit
point), then the previous chunks are purged. A chunk set no header names (its writer died or was
fenced half-way) is purged by the next instance to take over. Reading checks each chunk's length
and the whole body's SHA-256.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Literal

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from pydantic import BaseModel, ValidationError

from bus.errors import CheckpointUnreadable, LeaseLost
from contracts.envelope import utc_now

_WRONG_LAST_SEQUENCE = (10071, 10164)
# Room left in each value for the headers a KV write carries.
HEADER_ROOM = 4096
# How long the marker a purged chunk leaves behind lives (the bucket allows per-message TTLs).
PURGED_MARKER_SECONDS = 60


class StoredEffect(BaseModel):
    """An effect as the checkpoint keeps it, ready to publish: subject, id and JSON payload."""

    subject: str
    msg_id: str
    data: str


class ChunkRef(BaseModel):
    id: str
    count: int
    bytes: int
    sha256: str


class _Header(BaseModel):
    format: Literal[1] = 1
    agent: str
    holder: str
    fence: int
    written_at: str
    chunks: ChunkRef | None = None


class _Meta(BaseModel):
    positions: dict[str, int]
    effects: list[StoredEffect] = []
    applied: int = 0


@dataclass
class Checkpoint:
    """What one checkpoint holds. `state` is the state's JSON, as the model dumped it."""

    state: bytes
    positions: dict[str, int] = field(default_factory=dict)
    effects: list[StoredEffect] = field(default_factory=list)
    applied: int = 0  # events applied since the daemon first started, all instances together
    holder: str = ""
    fence: int = 0
    revision: int = 0  # its KV revision, once read or written
    chunks: ChunkRef | None = None
    size: int = 0  # bytes of body (meta line and state)

    def body(self) -> bytes:
        meta = _Meta(positions=self.positions, effects=self.effects, applied=self.applied)
        return meta.model_dump_json().encode() + b"\n" + self.state


class CheckpointStore:
    def __init__(self, js: JetStreamContext, *, bucket: str, agent: str, chunk_bytes: int) -> None:
        self._js = js
        self._bucket = bucket
        self._stream = f"KV_{bucket}"
        self._agent = agent
        self.key = f"{agent}.checkpoint"
        self.chunk_bytes = max(1, chunk_bytes)

    def _subject(self, key: str) -> str:
        return f"$KV.{self._bucket}.{key}"

    async def read(self) -> tuple[Checkpoint | None, int]:
        """(the latest checkpoint or None when there is none yet, the key's revision: what a write
        must expect). CheckpointUnreadable when it cannot be decoded: the caller must not start
        from nothing in its place."""
        data, revision = await self._get(self.key)
        if data is None:
            return None, revision
        header_line, _, inline = data.partition(b"\n")
        try:
            header = _Header.model_validate_json(header_line)
        except ValidationError as exc:
            raise CheckpointUnreadable(
                f"{self.key} (revision {revision}) has no valid header: {_first_error(exc)}; "
                "restore the bucket from a backup, or delete the key to start this daemon from nothing"
            ) from None
        body = await self._join(header.chunks, revision) if header.chunks else inline
        meta_line, _, state = body.partition(b"\n")
        try:
            meta = _Meta.model_validate_json(meta_line)
        except ValidationError as exc:
            raise CheckpointUnreadable(
                f"{self.key} (revision {revision}): bad meta line: {_first_error(exc)}"
            ) from None
        return Checkpoint(
            state=state,
            positions=meta.positions,
            effects=meta.effects,
            applied=meta.applied,
            holder=header.holder,
            fence=header.fence,
            revision=revision,
            chunks=header.chunks,
            size=len(body),
        ), revision

    async def write(self, checkpoint: Checkpoint, *, last: int, reuse_chunks: bool = False) -> int:
        """Store `checkpoint` if the key is still at revision `last` (0: if there is none yet);
        return the new revision, also set on `checkpoint`. LeaseLost when the key moved on.

        `reuse_chunks` keeps the body where it already is (a takeover rewrites only the header)."""
        previous = checkpoint.chunks
        header = _Header(
            agent=self._agent, holder=checkpoint.holder, fence=checkpoint.fence, written_at=utc_now().isoformat()
        )
        if reuse_chunks and previous is not None:
            header.chunks, value = previous, b""
        else:
            body = checkpoint.body()
            checkpoint.size = len(body)
            inline = header.model_dump_json().encode() + b"\n" + body
            if len(inline) <= self.chunk_bytes:
                header.chunks, value = None, inline
            else:
                header.chunks, value = await self._split(body), b""
        if header.chunks is not None:
            value = header.model_dump_json().encode()
        try:
            ack = await self._js.publish(
                self._subject(self.key), value, headers={"Nats-Expected-Last-Subject-Sequence": str(last)}
            )
        except APIError as exc:
            if exc.err_code not in _WRONG_LAST_SEQUENCE:
                raise
            if header.chunks is not None and header.chunks != previous:
                await self._purge(header.chunks)  # ours, named by no header: nobody will read them
            raise LeaseLost(f"{self.key} was written by another instance since revision {last} (fenced)") from None
        if previous is not None and previous != header.chunks:
            await self._purge(previous)
        checkpoint.revision, checkpoint.chunks = ack.seq, header.chunks
        return ack.seq

    async def purge_orphans(self, keep: ChunkRef | None) -> int:
        """Purge every chunk of this agent that `keep` (the current header's) does not name.
        Call it only once this instance's own checkpoint write has succeeded: before that, a
        fenced writer's header could still commit and name chunks that look orphaned."""
        prefix = self._subject(f"{self._agent}.chunk.")
        info = await self._js.stream_info(self._stream, subjects_filter=f"{prefix}>")
        keys = [subject.removeprefix(f"$KV.{self._bucket}.") for subject in (info.state.subjects or {})]
        orphans = [k for k in keys if keep is None or k.split(".")[-2] != keep.id]
        if not orphans:
            return 0
        kv = await self._js.key_value(self._bucket)
        for key in orphans:
            await kv.purge(key, msg_ttl=PURGED_MARKER_SECONDS)
        return len(orphans)

    async def _split(self, body: bytes) -> ChunkRef:
        ref = ChunkRef(
            id=uuid.uuid4().hex[:16],
            count=-(-len(body) // self.chunk_bytes),
            bytes=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
        )
        for n in range(ref.count):
            piece = body[n * self.chunk_bytes : (n + 1) * self.chunk_bytes]
            await self._js.publish(self._subject(self._chunk_key(ref, n)), piece)
        return ref

    async def _join(self, ref: ChunkRef, revision: int) -> bytes:
        pieces = []
        for n in range(ref.count):
            data, _ = await self._get(self._chunk_key(ref, n))
            if data is None:
                raise CheckpointUnreadable(
                    f"{self.key} (revision {revision}) names chunk {n} of {ref.id}, which is gone; "
                    "restore the bucket from a backup, or delete the key to start this daemon from nothing"
                )
            pieces.append(data)
        body = b"".join(pieces)
        if len(body) != ref.bytes or hashlib.sha256(body).hexdigest() != ref.sha256:
            raise CheckpointUnreadable(f"{self.key} (revision {revision}): chunks of {ref.id} do not match its digest")
        return body

    async def _purge(self, ref: ChunkRef) -> None:
        kv = await self._js.key_value(self._bucket)
        for n in range(ref.count):
            await kv.purge(self._chunk_key(ref, n), msg_ttl=PURGED_MARKER_SECONDS)

    def _chunk_key(self, ref: ChunkRef, n: int) -> str:
        return f"{self._agent}.chunk.{ref.id}.{n}"

    async def _get(self, key: str) -> tuple[bytes | None, int]:
        """A key's value and revision; (None, revision or 0) when missing, deleted or purged."""
        try:
            msg = await self._js.get_msg(self._stream, subject=self._subject(key))
        except NotFoundError:
            return None, 0
        if msg.headers and ("KV-Operation" in msg.headers or "Nats-Marker-Reason" in msg.headers):
            return None, msg.seq
        return msg.data or b"", msg.seq


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(map(str, error['loc'])) or 'value'}: {error['msg']}"
