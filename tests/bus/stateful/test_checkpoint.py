"""A daemon's checkpoint in KV: compare-and-set, chunks for a large state, never half of one."""

from __future__ import annotations

import json

import pytest

from bus.errors import CheckpointUnreadable, LeaseLost
from bus.stateful.checkpoint import Checkpoint, CheckpointStore, StoredEffect


def store(js, settings, *, chunk_bytes: int = 100_000) -> CheckpointStore:
    return CheckpointStore(js, bucket=settings.subjects.daemons_bucket, agent="d", chunk_bytes=chunk_bytes)


def checkpoint(state: dict, **fields) -> Checkpoint:
    return Checkpoint(state=json.dumps(state).encode(), **fields)


async def live_chunk_keys(js, settings) -> set[str]:
    """The chunk keys that hold data (not a purge marker)."""
    bucket = settings.subjects.daemons_bucket
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.d.chunk.>")
    live = set()
    for subject in info.state.subjects or {}:
        msg = await js.get_msg(f"KV_{bucket}", subject=subject)
        if msg.data:
            live.add(subject.removeprefix(f"$KV.{bucket}."))
    return live


async def test_a_checkpoint_round_trips_with_its_positions_and_effects(js, settings):
    """State, positions, pending effects, holder and fence come back as written."""
    checkpoints = store(js, settings)
    assert await checkpoints.read() == (None, 0)
    effect = StoredEffect(subject="x.y", msg_id="m-1", data='{"a":1}')
    written = checkpoint({"n": 1}, positions={"S": 7}, effects=[effect], applied=3, holder="a", fence=11)
    revision = await checkpoints.write(written, last=0)
    read, at = await checkpoints.read()
    assert at == revision == read.revision
    assert (read.state, read.positions, read.effects, read.applied) == (b'{"n": 1}', {"S": 7}, [effect], 3)
    assert (read.holder, read.fence, read.chunks) == ("a", 11, None)


async def test_a_write_on_a_stale_revision_is_fenced_and_changes_nothing(js, settings):
    """Whoever wrote since wins: a writer expecting an older revision gets LeaseLost."""
    checkpoints = store(js, settings)
    first = await checkpoints.write(checkpoint({"n": 1}), last=0)
    await checkpoints.write(checkpoint({"n": 2}, holder="new"), last=first)
    with pytest.raises(LeaseLost, match="fenced"):
        await checkpoints.write(checkpoint({"n": 99}, holder="old"), last=first)
    read, _ = await checkpoints.read()
    assert json.loads(read.state) == {"n": 2} and read.holder == "new"


async def test_a_state_larger_than_a_value_is_split_and_restored_whole(js, settings):
    """Split into chunks (never truncated), read back byte for byte; the next write's chunks
    replace the previous ones, which are purged."""
    checkpoints = store(js, settings, chunk_bytes=1000)
    big = {"filler": "x" * 5000, "n": 1}
    revision = await checkpoints.write(checkpoint(big, positions={"S": 1}), last=0)
    read, _ = await checkpoints.read()
    assert json.loads(read.state) == big and read.chunks.count == 6
    first_keys = await live_chunk_keys(js, settings)
    assert len(first_keys) == 6

    bigger = {"filler": "y" * 7000, "n": 2}
    await checkpoints.write(checkpoint(bigger, chunks=read.chunks), last=revision)
    read, _ = await checkpoints.read()
    assert json.loads(read.state) == bigger and read.chunks.count == 8
    keys = await live_chunk_keys(js, settings)
    assert len(keys) == 8 and not keys & first_keys


async def test_a_fenced_chunked_write_leaves_no_chunks_behind(js, settings):
    """Chunks go first, the header commits them: a header that loses the race purges its chunks."""
    checkpoints = store(js, settings, chunk_bytes=1000)
    await checkpoints.write(checkpoint({"n": 1}), last=0)
    with pytest.raises(LeaseLost):
        await checkpoints.write(checkpoint({"filler": "z" * 3000}), last=999_999)
    assert await live_chunk_keys(js, settings) == set()


async def test_chunks_no_header_names_are_purged_on_takeover(js, settings):
    """A writer that died between its chunks and its header leaves orphans; the next active
    instance purges them, keeping the ones its checkpoint names."""
    checkpoints = store(js, settings, chunk_bytes=1000)
    revision = await checkpoints.write(checkpoint({"filler": "a" * 2500}), last=0)
    kept, _ = await checkpoints.read()
    await checkpoints._split(b"o" * 2500)  # a crashed writer's chunks
    assert len(await live_chunk_keys(js, settings)) == 6
    assert await checkpoints.purge_orphans(keep=kept.chunks) == 3
    assert len(await live_chunk_keys(js, settings)) == 3
    read, at = await checkpoints.read()
    assert at == revision and read.state == kept.state


async def test_a_checkpoint_that_cannot_be_decoded_is_refused_not_ignored(js, settings):
    """A missing chunk or a foreign value is an error that says what to do, never a fresh start."""
    checkpoints = store(js, settings, chunk_bytes=1000)
    await checkpoints.write(checkpoint({"filler": "b" * 2500}), last=0)
    read, _ = await checkpoints.read()
    kv = await js.key_value(settings.subjects.daemons_bucket)
    await kv.purge(f"d.chunk.{read.chunks.id}.1")
    with pytest.raises(CheckpointUnreadable, match="chunk 1 .* is gone"):
        await checkpoints.read()
    await kv.put("d.checkpoint", b"not a checkpoint")
    with pytest.raises(CheckpointUnreadable, match="no valid header"):
        await checkpoints.read()
