"""An attribute the OTLP wire cannot carry costs that attribute, as with the SDK's encoder, not
the whole batch of spans it was exported with."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus.span_encoding import SpanEncoder
from bus.tracing import TracingTelemetry


def _spans(attributes: dict) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = TracingTelemetry(provider)
    with telemetry.span("healthy", {"mesh.release_id": "r-1"}):
        pass
    with telemetry.span("send mesh.release.proposed"):
        telemetry.annotate(attributes)
        telemetry.event("kv.update mesh_rounds", attributes)
    return list(exporter.get_finished_spans())


def test_a_lone_surrogate_drops_that_attribute_not_the_batch():
    """A string Python holds but UTF-8 cannot (json.loads accepts "\\udc80") loses its attribute;
    the other attributes and the other spans of the batch are exported, as the SDK does."""
    spans = _spans({"mesh.release_id": "r\udc80", "mesh.reviewer": "security"})
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans))
    assert ours == encode_spans(spans)
    assert len(ours.resource_spans[0].scope_spans[0].spans) == 2


def test_an_integer_beyond_int64_drops_that_attribute_not_wraps():
    """2**64 is not written as 0 (it is dropped, as the SDK drops it)."""
    spans = _spans({"mesh.big": 2**64, "mesh.small": -(2**63) - 1, "mesh.fine": 7})
    ours = ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans))
    assert ours == encode_spans(spans)
