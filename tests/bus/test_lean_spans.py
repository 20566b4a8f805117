"""bus/lean_spans.py and the tracing seam's fast paths, without a broker: the mesh's spans follow
the provider's sampler, a message its sender did not sample makes no span but carries its trace
on, and a span records what the SDK's would (a failure, only valid attributes)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind, StatusCode

from bus.tracing import TracingTelemetry

TRACE = "0af7651916cd43dd8448eb211c80319c"


def traced(sampler=None) -> tuple[TracingTelemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracingTelemetry(provider), exporter


def message(flags: str | None) -> SimpleNamespace:
    headers = {"Nats-Msg-Id": "m-1"}
    if flags is not None:
        headers["traceparent"] = f"00-{TRACE}-b7ad6b7169203331-{flags}"
    metadata = SimpleNamespace(consumer="c", num_delivered=1, stream="S", sequence=SimpleNamespace(stream=7))
    return SimpleNamespace(subject="mesh.events.release.proposed", data=b"{}", headers=headers, metadata=metadata)


def test_a_message_its_sender_did_not_sample_makes_no_span_and_carries_its_trace_on():
    """Flags 00 on the way in: no `process` or `send` span, the trace id still known (reviews and
    log lines record it), and what is published carries the same unsampled trace."""
    telemetry, exporter = traced()  # the default: parentbased_always_on
    with telemetry.consuming("security", message("00")):
        assert telemetry.trace_id() == TRACE
        with telemetry.span("dead-letter"), telemetry.publishing("security", "mesh.reviews.release.x", {}) as sent:
            pass
    assert exporter.get_finished_spans() == ()
    assert sent["traceparent"] == f"00-{TRACE}-b7ad6b7169203331-00"


def test_a_sampled_message_is_a_consumer_span_under_its_sender_with_a_producer_span_below():
    """Flags 01: `process` (CONSUMER) is a child of the remote sender, `send` (PRODUCER) of it, and
    the headers sent name the `send` span as the next parent."""
    telemetry, exporter = traced()
    with (
        telemetry.consuming("security", message("01")),
        telemetry.publishing("security", "mesh.reviews.release.x", {"Nats-Msg-Id": "r-1"}) as sent,
    ):
        pass
    send, process = exporter.get_finished_spans()
    assert process.kind is SpanKind.CONSUMER and process.parent.span_id == 0xB7AD6B7169203331
    assert process.parent.is_remote and format(process.context.trace_id, "032x") == TRACE
    assert send.kind is SpanKind.PRODUCER and send.parent.span_id == process.context.span_id
    assert sent["traceparent"].startswith(f"00-{TRACE}-{send.context.span_id:016x}-")
    assert process.attributes["mesh.stream_seq"] == 7 and send.attributes["messaging.message.id"] == "r-1"


@pytest.mark.parametrize(("sampler", "recorded"), [(ALWAYS_OFF, 0), (ParentBased(ALWAYS_OFF), 0), (ALWAYS_ON, 1)])
def test_a_message_without_a_trace_is_sampled_as_the_provider_says(sampler, recorded):
    """No `traceparent` (a plain NATS client): the provider's sampler decides, as for the SDK's spans."""
    telemetry, exporter = traced(sampler)
    with telemetry.consuming("coordinator", message(None)):
        assert telemetry.trace_id() is not None  # a trace of its own, sampled or not
    assert len(exporter.get_finished_spans()) == recorded


def test_a_failure_inside_a_span_ends_it_as_error_with_the_exception_and_only_valid_attributes():
    """As the SDK's spans: status ERROR with the exception's type and message, an `exception`
    event; attribute values OpenTelemetry does not allow are dropped, lists kept as tuples."""
    telemetry, exporter = traced()
    with pytest.raises(ValueError), telemetry.span("dead-letter", {"error.type": "failed"}):
        telemetry.annotate({"ok": [1, 2], "mixed": [1, "a"], "none": None, "flag": False})
        telemetry.event("kv.update mesh_rounds", {"mesh.kv.attempts": 2, "dropped": object()})
        raise ValueError("boom")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "ValueError: boom"
    assert dict(span.attributes) == {"error.type": "failed", "ok": (1, 2), "flag": False}
    kv, exception = span.events
    assert kv.attributes == {"mesh.kv.attempts": 2}
    assert exception.name == "exception" and exception.attributes["exception.type"] == "ValueError"


LIMITS = (
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)


def limited(monkeypatch, **limits: str) -> tuple[TracingTelemetry, InMemorySpanExporter, TracerProvider]:
    """A provider with these span limits and no others, whatever the environment says."""
    for name in LIMITS:
        monkeypatch.delenv(name, raising=False)
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # reads the OTEL_*_LIMIT variables, as a service's does
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracingTelemetry(provider), exporter, provider


def test_the_span_limits_an_operator_sets_bound_the_mesh_spans_as_the_sdks():
    """`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`,
    `OTEL_SPAN_EVENT_COUNT_LIMIT` and `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` trim a mesh span
    exactly as they trim an SDK span given the same calls: strings cut, the oldest attributes
    and events dropped, and what was dropped counted for the exporter."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        telemetry, exporter, provider = limited(
            monkeypatch,
            OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT="5",
            OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="4",
            OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT="3",
            OTEL_SPAN_EVENT_COUNT_LIMIT="2",
        )

        def calls(span) -> None:
            span.set_attribute("mesh.count", 6)  # set again below: then the newest, not the oldest
            span.set_attribute("mesh.reason", "a secret pattern matched")
            span.set_attribute("mesh.missing", ["security", "compliance"])
            span.set_attribute("mesh.count", 7)
            span.set_attribute("mesh.digest", b"\x00\x01")
            for n in range(3):
                span.add_event(f"kv.update {n}", {"mesh.kv.key": "release-42", "n": n})

        with telemetry.span("dead-letter", {"error.type": "failed"}):
            calls(trace.get_current_span())
        sdk = provider.get_tracer("sdk").start_span("dead-letter", attributes={"error.type": "failed"})
        calls(sdk)
        sdk.end()
    lean, theirs = exporter.get_finished_spans()
    assert (
        dict(lean.attributes)
        == dict(theirs.attributes)
        == {
            "mesh.missing": ("secur", "compl"),
            "mesh.count": 7,
            "mesh.digest": b"\x00\x01",
        }
    )
    assert lean.dropped_attributes == theirs.dropped_attributes == 2
    assert [(e.name, dict(e.attributes)) for e in lean.events] == [(e.name, dict(e.attributes)) for e in theirs.events]
    assert [e.name for e in lean.events] == ["kv.update 1", "kv.update 2"]
    assert lean.events[0].attributes["mesh.kv.key"] == "rele"
    assert lean.dropped_events == theirs.dropped_events == 1


def test_without_limits_set_a_mesh_span_keeps_its_plain_attributes():
    """The defaults (no length limit, 128 of each) leave a mesh span's attributes its own plain
    dict: the limits cost nothing until an operator sets one that bites."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        telemetry, exporter, _ = limited(monkeypatch)
        with telemetry.span("dead-letter", {"mesh.reason": "x" * 10_000}):
            pass
    [span] = exporter.get_finished_spans()
    assert type(span._attributes) is dict and span.attributes["mesh.reason"] == "x" * 10_000
    assert span.dropped_attributes == 0
