"""Reading stored messages without a consumer: those of a time window, and the last on a subject.

    outcomes = await read_window(nc, "MESH_OUTCOMES", "mesh.outcomes.>", start=since, end=until)
    last = await last_message(nc, "MESH_ALERTS", "mesh.alerts.>")

Both are `$JS.API.STREAM.MSG.GET.<stream>` requests, which `agent.reads_stream(stream, subject)`
allows and which change nothing on the server: no consumer is created, no delivery counted, and
the read works on any stream (a direct get needs the stream's `allow_direct`). A window is found
by time (`start_time`: the server looks up the first message stored at or after it), then walked
sequence by sequence with `next_by_subj`; a long window is cut into ranges walked side by side.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.client import Client

from bus.errors import MeshError

NO_MESSAGE = 10037  # the server's error code for "no message found"
_RANGE = 256  # sequences per walker below which splitting the window is not worth it


class StreamReadFailed(MeshError):
    """The server refused or did not answer a message get (a missing permission or stream, no answer)."""


@dataclass(frozen=True)
class StoredMessage:
    """A message as the stream stores it."""

    seq: int
    subject: str
    data: bytes
    time: datetime
    headers: dict[str, str] | None = None


async def get_message(
    nc: Client, stream: str, request: dict[str, Any], *, timeout: float = 5.0
) -> StoredMessage | None:
    """One `STREAM.MSG.GET` (`{"seq": …}`, `{"last_by_subj": …}`, `{"start_time": …, "next_by_subj": …}`);
    None when no message matches."""
    subject = f"$JS.API.STREAM.MSG.GET.{stream}"
    try:
        reply = await nc.request(subject, json.dumps(request).encode(), timeout=timeout)
        answer = json.loads(reply.data)
    except Exception as exc:  # a timeout, no responders, a permission error: all say the same
        raise StreamReadFailed(
            f"reading {stream} failed ({type(exc).__name__}: {exc}); is the stream provisioned "
            "(`mesh provision`) and does this identity declare `reads_stream`?"
        ) from exc
    if error := answer.get("error"):
        if error.get("err_code") == NO_MESSAGE:
            return None
        raise StreamReadFailed(f"reading {stream} failed: {error.get('description')} ({error.get('err_code')})")
    return _stored(answer["message"])


async def last_message(nc: Client, stream: str, subject: str, *, timeout: float = 5.0) -> StoredMessage | None:
    """The last message of `stream` on `subject` (wildcards allowed), or None."""
    return await get_message(nc, stream, {"last_by_subj": subject}, timeout=timeout)


async def read_window(
    nc: Client,
    stream: str,
    subject: str,
    *,
    start: datetime,
    end: datetime | None = None,
    after_seq: int = 0,
    walkers: int = 4,
    timeout: float = 5.0,
) -> list[StoredMessage]:
    """Every message of `stream` on `subject` stored in `[start, end)` (and after `after_seq`), oldest first."""
    first = await get_message(nc, stream, {"start_time": start.isoformat(), "next_by_subj": subject}, timeout=timeout)
    if first is None or (end is not None and first.time >= end):
        return []
    if first.seq <= after_seq:
        first = await get_message(nc, stream, {"seq": after_seq + 1, "next_by_subj": subject}, timeout=timeout)
        if first is None or (end is not None and first.time >= end):
            return []
    last = (await nc.jetstream(timeout=timeout).stream_info(stream)).state.last_seq
    bounds = _ranges(first.seq + 1, last, walkers)

    async def walk(low: int, high: int) -> list[StoredMessage]:
        found, seq = [], low
        while seq <= high:
            msg = await get_message(nc, stream, {"seq": seq, "next_by_subj": subject}, timeout=timeout)
            # a stream stores in time order: past `end` nothing later can be inside the window
            if msg is None or msg.seq > high or (end is not None and msg.time >= end):
                break
            found.append(msg)
            seq = msg.seq + 1
        return found

    parts = await asyncio.gather(*(walk(low, high) for low, high in bounds))
    return [first, *(msg for part in parts for msg in part)]


def _ranges(low: int, high: int, walkers: int) -> list[tuple[int, int]]:
    """`[low, high]` cut into at most `walkers` consecutive ranges of at least `_RANGE` sequences."""
    if high < low:
        return []
    count = max(1, min(walkers, (high - low + 1) // _RANGE))
    size = -(-(high - low + 1) // count)
    return [(start, min(start + size - 1, high)) for start in range(low, high + 1, size)]


def _stored(message: dict[str, Any]) -> StoredMessage:
    data = base64.b64decode(message.get("data") or "")
    raw = base64.b64decode(message["hdrs"]) if message.get("hdrs") else b""
    return StoredMessage(
        seq=message["seq"],
        subject=message["subject"],
        data=data,
        time=datetime.fromisoformat(message["time"]),
        headers=_headers(raw) if raw else None,
    )


def _headers(raw: bytes) -> dict[str, str]:
    """`NATS/1.0\\r\\nKey: value\\r\\n\\r\\n` as a dict (the first value of a repeated key)."""
    headers: dict[str, str] = {}
    for line in raw.decode(errors="replace").split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip():
            headers.setdefault(key.strip(), value.strip())
    return headers
