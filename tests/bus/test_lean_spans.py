"""bus/lean_spans.py and the tracing seam's fast paths, without a broker: the mesh's spans follow
the provider's sampler, a message its sender did not sample makes no span but carries its trace
on, and a span records what the SDK's would (a failure, only valid attributes)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
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
