"""Recent spans kept in a JetStream stream, so `mesh trace` works with no Jaeger: the layout,
and writing and reading it.

    <ns>.traces.spans.<trace id>     the spans of that one trace from one exported batch, as OTLP
                                     protobuf (`TracesData`: resources and scopes kept)
    <ns>.traces.release.<release>    the index: one small JSON message per (revision, trace) of a
                                     release, deduplicated by its Nats-Msg-Id; `mesh trace
                                     RELEASE` starts here

Spans are kept as the exporters sent them, protobuf, because splitting and re-encoding that
costs ~1 µs a span where converting to JSON costs ~40: the store runs on every span, `mesh
trace` on a few. Reading gives OTLP JSON (hex ids), the shape Jaeger's API v3 returns.

One stream (`MESH_TRACES`), limits only: a span goes after MESH_TRACES_MAX_AGE_SECONDS (24 h),
and past MESH_TRACES_MAX_BYTES (256 MB) the oldest go first. It is the operator's: the store
creates it and corrects its limits when it starts; services never touch it (they export over
OTLP/HTTP to the receiver in front of this store, bus/ops/trace_collector.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bus.ops.dead_letters import read_stream
from bus.ops.otlp_receiver import otlp_json
from bus.ops.settings import MeshSettings

RELEASE_ID, CONTENT_DIGEST = "mesh.release_id", "mesh.content_digest"  # span attributes (bus/tracing.py)
MAX_MESSAGE = 512 * 1024  # well below nats-server's default max_payload (1 MB)
_REMEMBERED = 50_000  # index entries this store remembers writing, so it writes each once


@dataclass(frozen=True)
class TraceRef:
    """One trace of one revision of a release: what the index holds."""

    release_id: str
    content_digest: str
    trace_id: str
    start_unix_nano: int = 0


def stream_config(settings: MeshSettings) -> StreamConfig:
    s = settings.subjects
    return StreamConfig(
        name=s.traces_stream,
        description="Recent spans of the mesh, for `mesh trace` (written by `mesh up`'s trace store).",
        subjects=[s.traces],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=settings.traces_max_age_seconds,
        max_bytes=settings.traces_max_bytes,
        duplicate_window=min(settings.duplicate_window_seconds, settings.traces_max_age_seconds),
        num_replicas=settings.stream_replicas,
    )


def split_by_trace(export: ExportTraceServiceRequest, *, limit: int = MAX_MESSAGE) -> list[tuple[str, bytes]]:
    """(hex trace id, OTLP protobuf) pairs: the spans of each trace in `export`, keeping their
    resource and scope, in messages of at most `limit` bytes (a batch too large is split in halves)."""
    groups: dict[bytes, list[tuple[int, int, Any]]] = {}
    for r, resource in enumerate(export.resource_spans):
        for c, scope in enumerate(resource.scope_spans):
            for span in scope.spans:
                groups.setdefault(span.trace_id, []).append((r, c, span))
    return [(trace_id.hex(), body) for trace_id, spans in groups.items() for body in _bodies(export, spans, limit)]


def _bodies(export: ExportTraceServiceRequest, spans: list[tuple[int, int, Any]], limit: int) -> list[bytes]:
    part = ExportTraceServiceRequest()
    resources: dict[int, Any] = {}
    scopes: dict[tuple[int, int], Any] = {}
    for r, c, span in spans:
        if r not in resources:
            resources[r] = part.resource_spans.add()
            resources[r].resource.CopyFrom(export.resource_spans[r].resource)
            resources[r].schema_url = export.resource_spans[r].schema_url
        if (r, c) not in scopes:
            source = export.resource_spans[r].scope_spans[c]
            scopes[(r, c)] = resources[r].scope_spans.add()
            scopes[(r, c)].scope.CopyFrom(source.scope)
            scopes[(r, c)].schema_url = source.schema_url
        scopes[(r, c)].spans.append(span)
    body = part.SerializeToString()
    if len(body) <= limit:
        return [body]
    if len(spans) == 1:
        return []  # one span larger than a message: dropped rather than stored cut
    half = len(spans) // 2
    return _bodies(export, spans[:half], limit) + _bodies(export, spans[half:], limit)


def trace_refs(document: dict[str, Any]) -> list[TraceRef]:
    """Every (release, revision, trace) the spans of an OTLP JSON document speak of, with its
    earliest start (a Jaeger search result)."""
    return _refs(
        (
            span.get("traceId", ""),
            int(span.get("startTimeUnixNano") or 0),
            {a["key"]: a.get("value", {}).get("stringValue") for a in span.get("attributes", [])},
        )
        for resource in document.get("resourceSpans", [])
        for scope in resource.get("scopeSpans", [])
        for span in scope.get("spans", [])
    )


def export_refs(export: ExportTraceServiceRequest) -> list[TraceRef]:
    """The same for an export as the receiver took it in (protobuf)."""
    return _refs(
        (
            span.trace_id.hex(),
            span.start_time_unix_nano,
            {a.key: a.value.string_value for a in span.attributes if a.key in (RELEASE_ID, CONTENT_DIGEST)},
        )
        for resource in export.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    )


def _refs(spans: Iterator[tuple[str, int, dict[str, str | None]]]) -> list[TraceRef]:
    found: dict[tuple[str, str, str], int] = {}
    for trace_id, start, attributes in spans:
        if release := attributes.get(RELEASE_ID):
            key = (release, attributes.get(CONTENT_DIGEST) or "", trace_id)
            found[key] = min(found.get(key, start), start)
    return [TraceRef(*key, start_unix_nano=start) for key, start in found.items()]


class TraceStore:
    """Writes exported spans into the traces stream and reads them back for `mesh trace`."""

    def __init__(self, js: JetStreamContext, settings: MeshSettings) -> None:
        self.js = js
        self.settings = settings
        self.subjects = settings.subjects
        self._indexed: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    async def ensure_stream(self) -> None:
        """Create the stream, or bring its limits to the settings' (MESH_TRACES_*)."""
        desired = stream_config(self.settings)
        try:
            current = (await self.js.stream_info(desired.name)).config
        except NotFoundError:
            await self.js.add_stream(desired)
            return
        fields = ("subjects", "max_age", "max_bytes", "discard", "duplicate_window", "description")
        if any(getattr(current, name) != getattr(desired, name) for name in fields):
            await self.js.update_stream(desired)

    async def exists(self) -> bool:
        try:
            await self.js.stream_info(self.subjects.traces_stream)
            return True
        except NotFoundError:
            return False

    async def store(self, export: ExportTraceServiceRequest) -> int:
        """Store one export as the receiver took it in; returns how many spans it held."""
        timeout = self.settings.publish_timeout_seconds
        writes = [
            self.js.publish(self.subjects.trace_spans(trace_id), body, timeout=timeout)
            for trace_id, body in split_by_trace(export)
        ]
        indexed = []
        for ref in export_refs(export):
            key = (ref.release_id, ref.content_digest, ref.trace_id)
            if key in self._indexed:
                continue
            indexed.append(key)
            # written again by a second worker, another store, or this one restarted: the server
            # keeps the first within the duplicate window
            msg_id = hashlib.sha256("\n".join(key).encode()).hexdigest()[:32]
            body = json.dumps(asdict(ref)).encode()
            writes.append(
                self.js.publish(
                    self.subjects.trace_index(ref.release_id), body, timeout=timeout, headers={"Nats-Msg-Id": msg_id}
                )
            )
        await asyncio.gather(*writes)
        for key in indexed:
            self._indexed[key] = None
        while len(self._indexed) > _REMEMBERED:
            self._indexed.popitem(last=False)
        return sum(len(scope.spans) for resource in export.resource_spans for scope in resource.scope_spans)

    async def refs(self, release_id: str) -> list[TraceRef]:
        """The index entries of a release, oldest first, each (revision, trace) once (an entry
        written again after the duplicate window is a second message)."""
        found: dict[tuple[str, str], TraceRef] = {}
        stream = self.subjects.traces_stream
        async for msg in read_stream(self.js, stream, self.subjects.trace_index(release_id)):
            ref = TraceRef(**json.loads(msg.data))
            if ref.release_id == release_id:  # a hashed subject token is not the id itself
                found.setdefault((ref.content_digest, ref.trace_id), ref)
        return sorted(found.values(), key=lambda r: r.start_unix_nano)

    async def trace(self, trace_id: str) -> dict[str, Any]:
        """Every stored span of one trace, as one OTLP JSON document."""
        stored = ExportTraceServiceRequest()
        async for msg in read_stream(self.js, self.subjects.traces_stream, self.subjects.trace_spans(trace_id)):
            stored.MergeFromString(msg.data)  # repeated fields append: every batch's resources
        return otlp_json(stored)


def pick_revision(refs: list[TraceRef], revision: str | None = None) -> tuple[str, list[TraceRef]]:
    """The revision to show and its traces, oldest first: the one whose digest starts with
    `revision` (with or without `sha256:`), else the latest. `("", [])` when none matches;
    ValueError when the prefix fits several."""
    if revision:
        wanted = revision.removeprefix("sha256:")
        refs = [r for r in refs if r.content_digest.removeprefix("sha256:").startswith(wanted)]
        if len({r.content_digest for r in refs}) > 1:
            raise ValueError(f"{revision!r} fits {len({r.content_digest for r in refs})} revisions")
    if not refs:
        return "", []
    digest = max(refs, key=lambda r: r.start_unix_nano).content_digest
    return digest, sorted((r for r in refs if r.content_digest == digest), key=lambda r: r.start_unix_nano)
