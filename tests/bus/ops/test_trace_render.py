"""`mesh trace`'s renderer on a fixed OTLP JSON document (pure: no broker, no Jaeger)."""

from __future__ import annotations

from bus.ops.trace_render import ORPHAN, as_json, build_tree, render, spans_of

T = "4bf92f3577b34da6a3ce929d0e0e4736"
MS = 1_000_000
BASE = 1_764_270_000_000_000_000


def _span(span_id: str, parent: str, name: str, start_ms: float, end_ms: float, **attributes) -> dict:
    span = {
        "traceId": T,
        "spanId": span_id,
        "name": name,
        "kind": 5,
        "startTimeUnixNano": str(BASE + int(start_ms * MS)),
        "endTimeUnixNano": str(BASE + int(end_ms * MS)),
        "attributes": [{"key": k.replace("__", "."), "value": _value(v)} for k, v in attributes.items()],
        "status": {},
    }
    if parent:
        span["parentSpanId"] = parent
    return span


def _value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}  # int64 travels as a string in OTLP JSON
    return {"stringValue": v}


def _resource(service: str, *spans: dict) -> dict:
    return {
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "agent-mesh"}, "spans": list(spans)}],
    }


RELEASE = {"mesh__release_id": "rel-42", "mesh__content_digest": "sha256:9f86d081884c7d65"}
DOCUMENT = {
    "resourceSpans": [
        _resource(
            "coordinator",
            # its parent is the CLI's publish span, which exported nowhere
            _span(
                "00000000000000a1",
                "ffffffffffffffff",
                "receive release.proposed",
                0.0,
                12.5,
                **RELEASE,
                messaging__destination__name="mesh.events.release.proposed",
            ),
            _span("00000000000000a2", "00000000000000a1", "kv.create round", 1.0, 2.0, **RELEASE),
            _span(
                "00000000000000a3",
                "00000000000000b1",
                "receive review",
                30.0,
                34.0,
                **RELEASE,
                mesh__outcome="approved",
            ),
        ),
        _resource(
            "security",
            _span(
                "00000000000000b1",
                "00000000000000a1",
                "receive release.proposed",
                3.0,
                28.0,
                **RELEASE,
                mesh__verdict="approve",
            ),
            _span(
                "00000000000000b2",
                "00000000000000b1",
                "chat claude-sonnet-4-6",
                4.0,
                24.0,
                gen_ai__request__model="claude-sonnet-4-6",
                gen_ai__usage__input_tokens=1200,
                gen_ai__usage__output_tokens=340,
            ),
        ),
    ]
}
DOCUMENT["resourceSpans"][1]["scopeSpans"][0]["spans"][1]["status"] = {"code": 2, "message": "overloaded"}


def test_spans_are_read_with_their_service_and_typed_attributes():
    """Each span carries its resource's service.name; int64 attributes come back as ints."""
    spans = {s.span_id: s for s in spans_of(DOCUMENT)}

    assert spans["00000000000000b2"].service == "security"
    assert spans["00000000000000b2"].attributes["gen_ai.usage.input_tokens"] == 1200
    assert spans["00000000000000b2"].status == "error"
    assert spans["00000000000000a1"].duration_ms == 12.5


def test_a_batch_exported_twice_counts_once():
    """The same span twice (an exporter's retry) is one span."""
    twice = {"resourceSpans": DOCUMENT["resourceSpans"] * 2}

    assert len(spans_of(twice)) == 5


def test_children_sit_under_their_parent_and_a_span_without_its_parent_is_a_marked_root():
    """The coordinator's receive has no exported parent: a root, marked; the rest hang below it."""
    (root,) = build_tree(spans_of(DOCUMENT))

    assert root.orphan and root.span.span_id == "00000000000000a1"
    assert [c.span.span_id for c in root.children] == ["00000000000000a2", "00000000000000b1"]  # by start
    security = root.children[1]
    assert [c.span.span_id for c in security.children] == ["00000000000000b2", "00000000000000a3"]


def test_the_tree_shows_service_operation_offset_duration_status_and_key_attributes():
    """One line per span: indentation by parentage, offsets from the trace's start, the facts that matter."""
    lines = render(spans_of(DOCUMENT), release_id="rel-42", revision="9f86d081884c")

    assert lines[0] == f"trace {T}  release rel-42  revision 9f86d081884c  5 spans  34.0 ms"
    body = [" ".join(line.split()) for line in lines[1:]]
    assert body == [
        f"{ORPHAN}coordinator receive release.proposed +0.0 ms 12.5 ms ok dest=mesh.events.release.proposed",
        "├─ coordinator kv.create round +1.0 ms 1.0 ms ok",
        "└─ security receive release.proposed +3.0 ms 25.0 ms ok verdict=approve",
        "├─ security chat claude-sonnet-4-6 +4.0 ms 20.0 ms ERROR model=claude-sonnet-4-6 tokens=1200→340 (overloaded)",
        "└─ coordinator receive review +30.0 ms 4.0 ms ok outcome=approved",
        f"{ORPHAN}parent span not in this trace (not exported, or not yet)",
    ]
    # the columns line up whatever the depth
    starts = {line.index(" ms ") for line in lines[1:-1]}
    assert len(starts) == 1


def test_the_release_shows_on_a_span_only_when_it_is_not_the_traces():
    """A span about another release says so; the trace's own release is in the header only."""
    other = {"resourceSpans": [_resource("security", _span("0c", "", "x", 0, 1, mesh__release_id="rel-7"))]}

    (line,) = render(spans_of(other), release_id="rel-42")[1:]
    assert "release=rel-7" in line


def test_the_json_form_lists_the_spans_in_tree_order_with_their_depth():
    """`--json`: the same tree, flattened with depths and offsets."""
    body = as_json(spans_of(DOCUMENT))

    assert body["trace_id"] == T and body["duration_ms"] == 34.0
    assert [(s["depth"], s["name"]) for s in body["spans"]] == [
        (0, "receive release.proposed"),
        (1, "kv.create round"),
        (1, "receive release.proposed"),
        (2, "chat claude-sonnet-4-6"),
        (2, "receive review"),
    ]
    assert body["spans"][0]["orphan"] is True and body["spans"][3]["status"] == "error"


def test_a_spans_events_sit_among_its_children_at_their_moment():
    """The coordinator's KV compare-and-set is an event on its `process` span: a `·` line between
    the children it came between, with its facts, and in `--json` under its span."""
    process = _span("0d", "", "process mesh.reviews.release.*", 0.0, 10.0, **RELEASE)
    process["events"] = [
        {
            "name": "kv.update mesh_rounds",
            "timeUnixNano": str(BASE + 2 * MS),
            "attributes": [
                {"key": "mesh.kv.attempts", "value": {"intValue": "1"}},
                {"key": "mesh.kv.key", "value": {"stringValue": "rel-42.9f86"}},
                {"key": "mesh.round.state", "value": {"stringValue": "decided"}},
                {"key": "mesh.round.decided", "value": {"boolValue": True}},
            ],
        }
    ]
    send = _span("0e", "0d", "send mesh.outcomes.release.*.*", 3.0, 4.0, **RELEASE, mesh__outcome="approved")
    document = {"resourceSpans": [_resource("coordinator", process, send)]}

    body = [" ".join(line.split()) for line in render(spans_of(document), release_id="rel-42")[1:]]
    assert body == [
        "coordinator process mesh.reviews.release.* +0.0 ms 10.0 ms ok",
        "├─ · kv.update mesh_rounds +2.0 ms attempts=1 state=decided decided=True",
        "└─ coordinator send mesh.outcomes.release.*.* +3.0 ms 1.0 ms ok outcome=approved",
    ]
    [event] = as_json(spans_of(document))["spans"][0]["events"]
    assert event["name"] == "kv.update mesh_rounds" and event["offset_ms"] == 2.0
