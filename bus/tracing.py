"""Traces: an OpenTelemetry span for every hop of a flow, exported over OTLP/HTTP.

Configured by the standard variables only, and only when an endpoint is set:

    OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318   # or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    OTEL_SERVICE_NAME=security                       # default: the agent's name
    OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1

The SDK reads the rest itself (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*`
headers and timeouts, `OTEL_PROPAGATORS`). With no endpoint, or `OTEL_SDK_DISABLED=true`, or
`OTEL_TRACES_EXPORTER=none`, there is no tracing at all: the runtime keeps the no-op
`bus.telemetry.Telemetry` and the SDK is never imported.

Spans follow the messaging conventions: `process <subject template>` (CONSUMER) around the
handling of each message, a child of the `send <subject template>` (PRODUCER) span whose W3C
`traceparent`/`tracestate` arrived in its NATS headers; both carry `messaging.system=nats`,
the destination, the message id, and what the message is about (`mesh.release_id`,
`mesh.content_digest`), so a release's trace is found by tag.

What it costs is kept small, because every message pays it: the mesh's own spans are
`bus.lean_spans.LeanSpan`s (no per-attribute checks), a message whose sender did not sample its
trace makes no span at all (its context goes on as it came), and the exporter writes OTLP with
`bus.span_encoding` instead of the SDK's protobuf objects. `mesh bench` measures the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from bus.lean_spans import LeanTracer
from bus.telemetry import Attributes, Telemetry
from contracts.subjects import subject_template

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from pydantic import BaseModel

# What a message is about, as span attributes: (model field, attribute).
_FACTS = (
    ("release_id", "mesh.release_id"),
    ("content_digest", "mesh.content_digest"),
    ("correlation_id", "mesh.correlation_id"),
    ("reviewer", "mesh.reviewer"),
    ("verdict", "mesh.verdict"),
    ("outcome", "mesh.outcome"),
)
_FLUSH_MILLIS = 5000
_log = logging.getLogger(__name__)


def tracing_from_environment(service: str, environ: Mapping[str, str] | None = None) -> TracingTelemetry | None:
    """Tracing as the OTEL_* variables configure it, or None when they do not ask for it.

    Nothing is exported until `start()` (the agent starts it when it starts running): building an
    agent only to read its consumers, as `mesh provision` does, starts no exporter thread.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    if not (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return None
    # Imported here: a process without tracing never loads the SDK.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the endpoint from OTEL_EXPORTER_OTLP_*,
    # the batching from OTEL_BSP_*: the SDK reads them when given none.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service}))
    return TracingTelemetry(provider, export=lambda: BatchSpanProcessor(otlp_exporter()))


def otlp_exporter() -> SpanExporter:
    """The SDK's OTLP/HTTP exporter (endpoint, headers, timeout, compression and retries as the
    OTEL_EXPORTER_OTLP_* variables say) with our encoder: the same bytes, a third of the CPU."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from bus.span_encoding import SpanEncoder

    class Exporter(OTLPSpanExporter):
        encoder = SpanEncoder()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            if self._shutdown:
                return SpanExportResult.FAILURE
            try:
                body = self.encoder.encode(spans)
            except Exception:  # noqa: BLE001 - a batch we cannot write is lost, not the exporter thread
                _log.exception("could not encode %d spans; dropped", len(spans))
                return SpanExportResult.FAILURE
            ok = self._client.export(body).success  # posts, retrying as the SDK does (503 included)
            return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    return Exporter()


class TracingTelemetry(Telemetry):
    """The telemetry seam with OpenTelemetry spans; `provider` is an SDK `TracerProvider`.

    `export` makes the span processor that `start()` adds (tests give a provider that has one).
    """

    traces = True

    def __init__(
        self,
        provider: TracerProvider,
        *,
        propagator: TextMapPropagator | None = None,
        export: Callable[[], SpanProcessor] | None = None,
    ) -> None:
        from opentelemetry.sdk.trace.sampling import ParentBased

        self.provider = provider
        self._export = export
        self._propagator = propagator or propagate.get_global_textmap()  # W3C unless OTEL_PROPAGATORS says
        self._fields = {name.lower() for name in self._propagator.fields}
        # Every sampler the OTEL_TRACES_SAMPLER variable names but always_on/always_off/traceidratio
        # follows the parent's decision: a message whose sender did not sample it makes no span.
        self._follows_parent = isinstance(provider.sampler, ParentBased)
        self._tracer = LeanTracer(provider, "agent-mesh", follows_parent=self._follows_parent)

    def start(self) -> None:
        """Start exporting, and make this provider the process's global one, so spans other code
        opens with the OpenTelemetry API (model calls) land in the same traces and exports."""
        if self._export is not None:
            export, self._export = self._export, None
            self.provider.add_span_processor(export())
            trace.set_tracer_provider(self.provider)

    # Attributes are worked out only for spans that record. A message whose trace the sender did
    # not sample makes no span at all: its context is attached as it came, so what is published
    # while handling it carries the same unsampled trace on (`mesh bench`'s tracing cost with a
    # ratio sampler).

    @contextlib.contextmanager
    def consuming(self, service: str, message: Msg) -> Iterator[None]:
        headers = message.headers or {}
        parent = self._propagator.extract(headers)
        if self._unsampled(parent):
            token = otel_context.attach(parent)
            try:
                yield
            finally:
                otel_context.detach(token)
            return
        template = subject_template(message.subject)
        meta = message.metadata
        attributes = _messaging("process", message.subject, template, headers)
        attributes["messaging.consumer.group.name"] = meta.consumer
        attributes["mesh.deliveries"] = meta.num_delivered
        attributes["mesh.stream_seq"] = meta.sequence.stream  # the subject names the stream
        span = self._tracer.start_span(f"process {template}", parent, SpanKind.CONSUMER, attributes)
        with _current(span):
            yield

    def received(self, model: BaseModel) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(facts_of(model))

    @contextlib.contextmanager
    def publishing(
        self, service: str, subject: str, headers: dict[str, str], model: BaseModel | None = None
    ) -> Iterator[dict[str, str]]:
        # A replayed message brings its old trace headers: this send's replace them.
        sent = {k: v for k, v in headers.items() if k.lower() not in self._fields}
        if self._unsampled():
            self._propagator.inject(sent)  # the trace goes on, unsampled, without a span of ours
            yield sent
            return
        template = subject_template(subject)
        attributes = _messaging("send", subject, template, headers)
        if model is not None:
            attributes.update(facts_of(model))
        span = self._tracer.start_span(f"send {template}", None, SpanKind.PRODUCER, attributes)
        with _current(span):
            self._propagator.inject(sent)
            yield sent

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        parent: Mapping[str, str] | None = None,
        link: Mapping[str, str] | None = None,
    ) -> Iterator[None]:
        context = self._propagator.extract(parent) if parent is not None else None
        if self._unsampled(context):
            # no span, but a trace from `parent` goes on (unsampled) in what is published inside
            token = otel_context.attach(context) if context is not None else None
            try:
                yield
            finally:
                if token is not None:
                    otel_context.detach(token)
            return
        links = None
        if link is not None:
            linked = trace.get_current_span(self._propagator.extract(link)).get_span_context()
            links = [Link(linked)] if linked.is_valid else None
        span = self._tracer.start_span(name, context, SpanKind.INTERNAL, dict(attributes or {}), links or ())
        with _current(span):
            yield

    def annotate(self, attributes: Attributes) -> None:
        trace.get_current_span().set_attributes(attributes)

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        trace.get_current_span().add_event(name, attributes)

    def failed(self, reason: str) -> None:
        trace.get_current_span().set_status(Status(StatusCode.ERROR, reason))

    def trace_id(self) -> str | None:
        context = trace.get_current_span().get_span_context()
        return trace.format_trace_id(context.trace_id) if context.is_valid else None

    async def flush(self) -> None:
        # The exporter posts over HTTP, blocking: not on the event loop.
        await asyncio.to_thread(self.provider.force_flush, _FLUSH_MILLIS)

    def _unsampled(self, context: otel_context.Context | None = None) -> bool:
        """The trace in `context` (else the current one) exists and its sender did not sample it."""
        if not self._follows_parent:
            return False
        parent = trace.get_current_span(context).get_span_context()
        return parent.is_valid and not parent.trace_flags.sampled


@contextlib.contextmanager
def _current(span: Span) -> Iterator[None]:
    """`span` is the current span until it ends; a failure ends it as ERROR, with the exception as
    an event (what the SDK's `start_as_current_span` does, with two context managers less)."""
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    except Exception as exc:
        if span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        otel_context.detach(token)
        span.end()


def facts_of(model: BaseModel) -> dict[str, str]:
    """What a message is about, as span attributes (`mesh.release_id`, `mesh.content_digest`…)."""
    fields = model.__dict__  # a field it lacks would cost pydantic's __getattr__ a raised error
    found = {}
    for field, attribute in _FACTS:
        value = fields.get(field)
        if value is None and isinstance(getattr(type(model), field, None), property):
            value = getattr(model, field)  # a proposal's content digest is worked out from its content
        if value is not None and value != "":
            found[attribute] = str(value)
    if "mesh.correlation_id" in found and found["mesh.correlation_id"] == found.get("mesh.release_id"):
        del found["mesh.correlation_id"]  # the default: a flow is correlated by its release
    return found


def _messaging(operation: str, subject: str, template: str, headers: Mapping[str, str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.operation.type": operation,
        "messaging.destination.name": subject,
        "messaging.destination.template": template,
    }
    if msg_id := headers.get("Nats-Msg-Id"):
        attributes["messaging.message.id"] = msg_id
    return attributes
