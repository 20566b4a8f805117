"""Finished spans as an OTLP `ExportTraceServiceRequest`, in protobuf bytes, written directly.

The SDK's encoder builds a protobuf object per span, attribute and value, then serializes them;
in a busy service that was about a third of what a recorded span costs. This writes the same
wire bytes from the spans with a few dict lookups per attribute: what repeats (resources,
scopes, attribute keys, the common values of the mesh's attributes) is encoded once and kept.
Pure: no I/O; `tests/bus/test_span_encoding.py` checks it against the SDK's encoder.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
# SpanFlags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, with SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_LOCAL, _REMOTE = _FIXED32(0x100), _FIXED32(0x300)
_CACHED_VALUES = 4096  # (key, value) pairs kept encoded: the mesh repeats a few dozen


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: `tag` is (number << 3) | 2."""
    return _varint(tag) + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(0x0A, value.encode())
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:
            raise ValueError(f"{value} is beyond int64")  # the SDK drops it; masked it would be wrong
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: negatives as 10 bytes
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(0x3A, value)
    if isinstance(value, Sequence):
        return _field(0x2A, b"".join(_field(0x0A, _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(0x32, b"".join(_field(0x0A, _key_value(str(k), v)) for k, v in value.items()))
    return b""


def _key_value(key: str, value: Any) -> bytes:
    return _field(0x0A, key.encode()) + _field(0x12, _any_value(value))


class SpanEncoder:
    """`SpanEncoder().encode(spans)`: the request body an OTLP/HTTP exporter posts."""

    def __init__(self) -> None:
        self._values: dict[tuple[int, str, str], bytes] = {}  # (tag, key, string value) -> the field
        self._headers: dict[int, tuple[Any, bytes]] = {}  # id(resource or scope) -> (it, its field)

    def encode(self, spans: Sequence[Any]) -> bytes:
        """`spans` are SDK `ReadableSpan`s; grouped by resource, then scope, as the SDK does."""
        # By identity: a resource's hash is its attributes as JSON, and a provider has one resource
        groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        for span in spans:
            resource, scope = span.resource, span.instrumentation_scope
            scopes = groups.setdefault(id(resource), (resource, {}))[1]
            scopes.setdefault(id(scope), (scope, []))[1].append(self._span(span))
        body = []
        for resource, scopes in groups.values():
            parts = [self._resource(resource)]
            for scope, encoded in scopes.values():
                inner = self._scope(scope) + b"".join(encoded)
                if scope is not None and scope.schema_url:
                    inner += _field(0x1A, scope.schema_url.encode())
                parts.append(_field(0x12, inner))
            if resource.schema_url:
                parts.append(_field(0x1A, resource.schema_url.encode()))
            body.append(_field(0x0A, b"".join(parts)))
        return b"".join(body)

    def _resource(self, resource: Any) -> bytes:
        return self._header(resource, lambda: _field(0x0A, self._attributes(0x0A, resource.attributes)))

    def _scope(self, scope: Any) -> bytes:
        def encode() -> bytes:
            if scope is None:
                return _field(0x0A, b"")
            inner = _field(0x0A, scope.name.encode()) if scope.name else b""
            if scope.version:
                inner += _field(0x12, scope.version.encode())
            return _field(0x0A, inner + self._attributes(0x1A, scope.attributes))

        return self._header(scope, encode)

    def _header(self, item: Any, encode: Any) -> bytes:
        found = self._headers.get(id(item))
        if found is None or found[0] is not item:
            if len(self._headers) > 64:  # resources and scopes are few; never grow without bound
                self._headers.clear()
            found = self._headers[id(item)] = (item, encode())  # kept: its id stays its own
        return found[1]

    def _attributes(self, tag: int, attributes: Mapping[str, Any] | None) -> bytes:
        if not attributes:
            return b""
        values = self._values
        out = []
        for key, value in attributes.items():
            try:
                if type(value) is not str:  # numbers vary; and True == 1 would share a cache entry
                    out.append(_field(tag, _key_value(key, value)))
                    continue
                found = values.get((tag, key, value))
                if found is None:
                    if len(values) >= _CACHED_VALUES:
                        values.clear()
                    found = values[(tag, key, value)] = _field(tag, _key_value(key, value))
            except (UnicodeEncodeError, ValueError):
                continue  # a lone surrogate, an int beyond int64: that attribute is lost, as with the SDK
            out.append(found)
        return b"".join(out)

    def _span(self, span: Any) -> bytes:
        context = span.context
        parent = span.parent
        parts = [
            b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        ]
        if context.trace_state:
            parts.append(_field(0x1A, ",".join(f"{k}={v}" for k, v in context.trace_state.items()).encode()))
        if parent is not None:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        parts.append(_field(0x2A, span.name.encode()))
        parts.append(b"\x30" + _varint(span.kind.value + 1))  # the SDK's INTERNAL is 0, OTLP's is 1
        parts.append(b"\x39" + _FIXED64(span.start_time or 0))
        parts.append(b"\x41" + _FIXED64(span.end_time or 0))
        parts.append(self._attributes(0x4A, span.attributes))
        if span.dropped_attributes:
            parts.append(b"\x50" + _varint(span.dropped_attributes))
        for event in span.events:
            inner = b"\x09" + _FIXED64(event.timestamp) + _field(0x12, event.name.encode())
            inner += self._attributes(0x1A, event.attributes)
            if event.dropped_attributes:
                inner += b"\x20" + _varint(event.dropped_attributes)
            parts.append(_field(0x5A, inner))
        if span.dropped_events:
            parts.append(b"\x60" + _varint(span.dropped_events))
        for link in span.links:
            inner = b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big")
            inner += b"\x12\x08" + link.context.span_id.to_bytes(8, "big")
            inner += self._attributes(0x22, link.attributes)
            if link.dropped_attributes:
                inner += b"\x28" + _varint(link.dropped_attributes)
            inner += b"\x35" + (_REMOTE if link.context.is_remote else _LOCAL)
            parts.append(_field(0x6A, inner))
        if span.dropped_links:
            parts.append(b"\x70" + _varint(span.dropped_links))
        status = span.status
        inner = _field(0x12, status.description.encode()) if status.description else b""
        if status.status_code.value:
            inner += b"\x18" + _varint(status.status_code.value)
        parts.append(_field(0x7A, inner))
        parts.append(b"\x85\x01" + (_REMOTE if parent is not None and parent.is_remote else _LOCAL))  # flags: 16
        return _field(0x12, b"".join(parts))
