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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from bus.telemetry import Attributes, Telemetry
from contracts.subjects import subject_template

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
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
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the endpoint from OTEL_EXPORTER_OTLP_*,
    # the batching from OTEL_BSP_*: the SDK reads them when given none.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service}))
    return TracingTelemetry(provider, export=lambda: BatchSpanProcessor(OTLPSpanExporter()))


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
        self.provider = provider
        self._export = export
        self._tracer = provider.get_tracer("agent-mesh")
        self._propagator = propagator or propagate.get_global_textmap()  # W3C unless OTEL_PROPAGATORS says
        self._fields = {name.lower() for name in self._propagator.fields}

    def start(self) -> None:
        """Start exporting, and make this provider the process's global one, so spans other code
        opens with the OpenTelemetry API (model calls) land in the same traces and exports."""
        if self._export is not None:
            export, self._export = self._export, None
            self.provider.add_span_processor(export())
            trace.set_tracer_provider(self.provider)

    # Attributes are worked out only for spans that record: a span the sampler dropped costs
    # its start and end, nothing more (`mesh bench`'s tracing cost with a ratio sampler).

    @contextlib.contextmanager
    def consuming(self, service: str, message: Msg) -> Iterator[None]:
        headers = message.headers or {}
        template = subject_template(message.subject)
        with self._tracer.start_as_current_span(
            f"process {template}", context=self._propagator.extract(headers), kind=SpanKind.CONSUMER
        ) as span:
            if span.is_recording():
                meta = message.metadata
                span.set_attributes(
                    {
                        **_messaging("process", message.subject, template, headers),
                        "messaging.consumer.group.name": meta.consumer,
                        "messaging.message.body.size": len(message.data or b""),
                        "mesh.deliveries": meta.num_delivered,
                        "mesh.stream": meta.stream,
                        "mesh.stream_seq": meta.sequence.stream,
                    }
                )
            yield

    def received(self, model: BaseModel) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(facts_of(model))

    @contextlib.contextmanager
    def publishing(
        self, service: str, subject: str, headers: dict[str, str], model: BaseModel | None = None
    ) -> Iterator[dict[str, str]]:
        template = subject_template(subject)
        with self._tracer.start_as_current_span(f"send {template}", kind=SpanKind.PRODUCER) as span:
            if span.is_recording():
                span.set_attributes(_messaging("send", subject, template, headers))
                if model is not None:
                    span.set_attributes(facts_of(model))
            # A replayed message brings its old trace headers: this send's replace them.
            sent = {k: v for k, v in headers.items() if k.lower() not in self._fields}
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
        links = None
        if link is not None:
            linked = trace.get_current_span(self._propagator.extract(link)).get_span_context()
            links = [Link(linked)] if linked.is_valid else None
        with self._tracer.start_as_current_span(name, context=context, attributes=attributes, links=links):
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


def facts_of(model: BaseModel) -> dict[str, str]:
    """What a message is about, as span attributes (`mesh.release_id`, `mesh.content_digest`…)."""
    found = {}
    for field, attribute in _FACTS:
        value = getattr(model, field, None)
        if value is not None and value != "":
            found[attribute] = str(value)
    return found


def _messaging(operation: str, subject: str, template: str, headers: Mapping[str, str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": subject,
        "messaging.destination.template": template,
    }
    if msg_id := headers.get("Nats-Msg-Id"):
        attributes["messaging.message.id"] = msg_id
    return attributes
