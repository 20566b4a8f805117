"""One trace as a tree in the terminal, from OTLP JSON: what `mesh trace` prints, whether the
spans came from the mesh's own trace store or from Jaeger's API v3 (both speak OTLP JSON).

    trace 4bf92f35…  release rel-42  revision sha256:9f86d081…  7 spans  41.3 ms
    coordinator  receive mesh.events.release.proposed     +0.0 ms  12.1 ms  ok  dest=mesh.events.release.proposed
    ├─ coordinator  kv.create round                       +1.2 ms   1.0 ms  ok
    └─ security  receive mesh.events.release.proposed     +0.9 ms   9.4 ms  ok  verdict=approve

A child sits under its parent, children by start; a span's events (the coordinator's KV
compare-and-set, a deadline firing) sit among its children at their moment, marked `·`. A span
whose parent is not there (not exported yet, or from a process that exports nowhere) is shown at
the top with `⋯`. Pure: no I/O, so it is tested on a fixed document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ORPHAN = "⋯ "
_STATUS = {"1": "ok", "STATUS_CODE_OK": "ok", "2": "error", "STATUS_CODE_ERROR": "error"}
_FACTS = ("mesh.reviewer", "mesh.verdict", "mesh.outcome")  # shown as reviewer=…, verdict=…, outcome=…


@dataclass
class Event:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str
    start_ns: int
    end_ns: int
    status: str = "unset"  # ok, error or unset
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e6


@dataclass
class Node:
    span: Span
    children: list[Node] = field(default_factory=list)
    orphan: bool = False  # has a parent that is not among the spans


def spans_of(document: dict[str, Any]) -> list[Span]:
    """The spans of an OTLP JSON document (`{"resourceSpans": …}`), each span once."""
    found: dict[tuple[str, str], Span] = {}
    for resource in document.get("resourceSpans", []):
        service = str(_attributes(resource.get("resource", {})).get("service.name", "?"))
        for scope in resource.get("scopeSpans", []):
            for raw in scope.get("spans", []):
                status = raw.get("status", {})
                span = Span(
                    trace_id=raw.get("traceId", ""),
                    span_id=raw.get("spanId", ""),
                    parent_id=raw.get("parentSpanId", ""),
                    name=raw.get("name", ""),
                    service=service,
                    start_ns=int(raw.get("startTimeUnixNano") or 0),
                    end_ns=int(raw.get("endTimeUnixNano") or 0),
                    status=_STATUS.get(str(status.get("code", "")), "unset"),
                    status_message=status.get("message", ""),
                    attributes=_attributes(raw),
                    events=[
                        Event(e.get("name", ""), int(e.get("timeUnixNano") or 0), _attributes(e))
                        for e in raw.get("events", [])
                    ],
                )
                found[(span.trace_id, span.span_id)] = span  # a batch exported twice counts once
    return list(found.values())


def _attributes(item: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in item.get("attributes", [])}


def _value(value: dict[str, Any]) -> Any:
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    for kind, convert in (("stringValue", str), ("intValue", int), ("doubleValue", float), ("boolValue", bool)):
        if kind in value:
            return convert(value[kind])
    return None


def build_tree(spans: list[Span]) -> list[Node]:
    """The roots (true roots and orphans), each with its children, all ordered by start."""
    nodes = {span.span_id: Node(span) for span in spans}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.span.parent_id) if node.span.parent_id else None
        if parent is None or parent is node:
            node.orphan = bool(node.span.parent_id)
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: (n.span.start_ns, n.span.name))
    return sorted(roots, key=lambda n: (n.orphan, n.span.start_ns, n.span.name))


def key_attributes(span: Span, *, release_id: str | None = None) -> list[str]:
    """What a line shows after the timing: the release when it is not the trace's, the mesh's
    facts (reviewer, verdict, outcome, a redelivery), the model, its tokens and cost, the subject
    when the span's name does not already say it, and why it failed."""
    a = span.attributes
    shown = []
    if a.get("mesh.release_id") not in (None, release_id):
        shown.append(f"release={a['mesh.release_id']}")
    shown += [f"{key.removeprefix('mesh.')}={_short(a[key])}" for key in _FACTS if key in a]
    if int(a.get("mesh.deliveries") or 1) > 1:
        shown.append(f"delivery={a['mesh.deliveries']}")
    if model := a.get("gen_ai.response.model") or a.get("gen_ai.request.model"):
        shown.append(f"model={model}")
    if "gen_ai.usage.input_tokens" in a or "gen_ai.usage.output_tokens" in a:
        shown.append(f"tokens={a.get('gen_ai.usage.input_tokens', 0)}→{a.get('gen_ai.usage.output_tokens', 0)}")
    if "mesh.llm.cost_usd" in a:
        shown.append(f"cost=${float(a['mesh.llm.cost_usd']):.4f}")
    if (destination := a.get("messaging.destination.name")) and destination not in span.name:
        shown.append(f"dest={_short(destination, 60)}")
    if error := a.get("error.type"):
        shown.append(f"error={error}")
    if span.status == "error" and span.status_message:
        shown.append(f"({_short(span.status_message, 80)})")
    return shown


def event_attributes(event: Event) -> list[str]:
    """What an event's line shows: its `mesh.*` facts (a KV update's attempts, state, decided)."""
    shown = []
    for key, value in event.attributes.items():
        if key.startswith("mesh.") and key not in ("mesh.kv.key", "mesh.kv.seconds"):
            shown.append(f"{key.removeprefix('mesh.').removeprefix('kv.').removeprefix('round.')}={_short(value)}")
        elif key == "error.type":
            shown.append(f"error={value}")
    return shown


def _short(value: Any, width: int = 40) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def render(spans: list[Span], *, release_id: str | None = None, revision: str | None = None) -> list[str]:
    """The lines of one trace: a header, then one line per span, indented by parentage."""
    if not spans:
        return []
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    header = f"trace {spans[0].trace_id}"
    if release_id:
        header += f"  release {release_id}"
    if revision:
        header += f"  revision {revision}"
    header += f"  {len(spans)} spans  {(end - start) / 1e6:.1f} ms"
    rows: list[tuple[str, Span | Event]] = []
    for root in build_tree(spans):
        _walk(root, ORPHAN if root.orphan else "", "", rows)
    width = min(max(len(label) for label, _ in rows), 90)
    lines = [header]
    for label, item in rows:
        if isinstance(item, Event):
            timing = f"{(item.time_ns - start) / 1e6:+9.1f} ms {'':11}  {'':<5}"
            lines.append(f"{label:<{width}}  {timing}  {'  '.join(event_attributes(item))}".rstrip())
            continue
        status = "ERROR" if item.status == "error" else "ok"  # unset is how most successful spans end
        timing = f"{(item.start_ns - start) / 1e6:+9.1f} ms {item.duration_ms:8.1f} ms  {status:<5}"
        attributes = "  ".join(key_attributes(item, release_id=release_id))
        lines.append(f"{label:<{width}}  {timing}  {attributes}".rstrip())
    if any(label.startswith(ORPHAN) for label, _ in rows):
        lines.append(f"{ORPHAN}parent span not in this trace (not exported, or not yet)")
    return lines


def _walk(node: Node, prefix: str, indent: str, rows: list[tuple[str, Span | Event]]) -> None:
    rows.append((f"{prefix}{node.span.service}  {node.span.name}", node.span))
    below: list[Node | Event] = [*node.children, *(e for e in node.span.events if e.name != "exception")]
    below.sort(key=lambda item: item.time_ns if isinstance(item, Event) else item.span.start_ns)
    for i, item in enumerate(below):
        last = i == len(below) - 1
        branch, more = indent + ("└─ " if last else "├─ "), indent + ("   " if last else "│  ")
        if isinstance(item, Event):
            rows.append((f"{branch}· {item.name}", item))
        else:
            _walk(item, branch, more, rows)


def as_json(spans: list[Span]) -> dict[str, Any]:
    """The same tree for machines: the spans in display order with their depth."""
    start = min((s.start_ns for s in spans), default=0)
    end = max((s.end_ns for s in spans), default=0)
    flat: list[dict[str, Any]] = []

    def walk(node: Node, depth: int) -> None:
        s = node.span
        flat.append(
            {
                "depth": depth,
                "orphan": node.orphan,
                "service": s.service,
                "name": s.name,
                "span_id": s.span_id,
                "parent_span_id": s.parent_id or None,
                "start_offset_ms": round((s.start_ns - start) / 1e6, 3),
                "duration_ms": round(s.duration_ms, 3),
                "status": s.status,
                "status_message": s.status_message or None,
                "attributes": s.attributes,
                "events": [
                    {"name": e.name, "offset_ms": round((e.time_ns - start) / 1e6, 3), "attributes": e.attributes}
                    for e in s.events
                ],
            }
        )
        for child in node.children:
            walk(child, depth + 1)

    for root in build_tree(spans):
        walk(root, 0)
    return {
        "trace_id": spans[0].trace_id if spans else None,
        "start_unix_nano": start,
        "duration_ms": round((end - start) / 1e6, 3),
        "spans": flat,
    }
