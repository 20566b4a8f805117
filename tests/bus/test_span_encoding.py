"""bus/span_encoding.py writes what the SDK's OTLP encoder writes: the same request, decoded."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from bus.span_encoding import SpanEncoder
from bus.tracing import TracingTelemetry


def finished_spans() -> list:
    """Spans of every shape: ours and the SDK's, two scopes, attributes of each type, events,
    a link, an error with its exception, a remote parent."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "coordinator", "mesh.replica": 2}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = TracingTelemetry(provider)
    parent = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "mesh=1"}
    with telemetry.span("dead-letter", {"error.type": "invalid", "mesh.kv.attempts": 3}, parent=parent, link=parent):
        telemetry.event("kv.update mesh_rounds", {"mesh.round.decided": True, "mesh.kv.seconds": 0.25})
        telemetry.annotate({"mesh.missing": ["security", "compliance"], "mesh.deliveries": -1, "empty": ""})
        telemetry.failed("it broke")
    sdk = provider.get_tracer("services.llm", "1.2")
    remote = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1))
    with sdk.start_as_current_span("chat claude", kind=SpanKind.CLIENT, links=[Link(remote)]):
        pass
    try:
        with sdk.start_as_current_span("review.rules", attributes={"mesh.rules.ratios": [0.5, 1.5]}) as span:
            span.set_status(Status(StatusCode.OK))
            raise ValueError("boom")
    except ValueError:
        pass
    return list(exporter.get_finished_spans())


def test_the_request_decodes_to_what_the_sdk_encoder_makes():
    """Resources, scopes, ids, kinds, times, attributes of every type, events, links, status and
    flags: the bytes differ only where protobuf allows, the decoded request is the same."""
    spans = finished_spans()
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans))
    assert ours == encode_spans(spans)
    assert len(ours.resource_spans[0].scope_spans) == 2


def test_what_it_keeps_encoded_does_not_leak_between_spans():
    """Encoding the same spans again, with the caches warm, gives the same bytes."""
    spans = finished_spans()
    encoder = SpanEncoder()
    assert encoder.encode(spans) == encoder.encode(spans)
    assert ExportTraceServiceRequest.FromString(encoder.encode(spans[:1])) == encode_spans(spans[:1])
