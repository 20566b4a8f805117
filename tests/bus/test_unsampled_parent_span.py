"""A step started under a parent trace its sender did not sample (`Telemetry.span(parent=…)`, as
`mesh dlq replay` does with the dead letter's original headers) makes no span, and what is
published inside it carries that same trace on, unsampled — it does not start a new trace."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus.tracing import TracingTelemetry

ORIGINAL = "0af7651916cd43dd8448eb211c80319c"


def test_a_replay_under_an_unsampled_original_continues_its_trace():
    """The replay's `traceparent` is in the original's trace, not sampled; no span is recorded;
    the original's `tracestate` goes on too."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # ParentBased(ALWAYS_ON): a new root would be sampled
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = TracingTelemetry(provider)
    original = {"traceparent": f"00-{ORIGINAL}-b7ad6b7169203331-00", "tracestate": "vendor=abc"}

    with (
        telemetry.span("mesh dlq replay", {"mesh.dead_letter.seq": 7}, parent=original),
        telemetry.publishing("mesh-cli", "mesh.t.release.proposed", {"Nats-Msg-Id": "x"}) as headers,
    ):
        pass

    version, trace_id, _, flags = headers["traceparent"].split("-")
    assert trace_id == ORIGINAL
    assert int(flags, 16) & 1 == 0
    assert headers.get("tracestate") == "vendor=abc"
    assert exporter.get_finished_spans() == ()
