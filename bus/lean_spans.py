"""The mesh's own spans (`process`, `send`, `dead-letter`…), made without the SDK's per-span cost.

The SDK's `Span` checks every attribute against the limits, under a lock, wraps each event's
attributes the same way, and copies itself into a `ReadableSpan` when it ends: in a busy
service that was most of what a span cost. A `LeanSpan` is that `ReadableSpan` from the start,
its attributes a plain dict. The mesh's attributes are ours and known to be valid, so only
values other code sets on a mesh span (a handler annotating its `process` span) are checked.
The provider's span limits (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, `OTEL_SPAN_EVENT_COUNT_LIMIT`…)
are applied when the span ends, with the SDK's own bounded containers, and only when one bites.

Everything else is the provider's: its resource, sampler, id generator and span processors
(the exporter's batch processor, or a test's in-memory one), so these spans and the SDK's
(model calls, rules) travel together. Spans other code opens under a `LeanSpan` are the SDK's.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider

_UNSET = Status(StatusCode.UNSET)
_SIMPLE = (str, bool, int, float)


class LeanTracer:
    """Starts `LeanSpan`s as `provider`'s tracer would: same sampler, ids, resource, processors."""

    def __init__(self, provider: TracerProvider, name: str, *, follows_parent: bool) -> None:
        self.resource = provider.resource
        self.scope = InstrumentationScope(name)
        self.sampler = provider.sampler
        self.ids = provider.id_generator
        # The SDK keeps the processors it was given in one composite; its spans end there too.
        self.processor = provider._active_span_processor
        self.limits: SpanLimits = provider._span_limits
        # Without a length limit (the default) a span is bounded only when a count is over its limit.
        limits = self.limits
        self.truncates = limits.max_span_attribute_length is not None or limits.max_attribute_length is not None
        counts = (
            limits.max_span_attributes,
            limits.max_events,
            limits.max_links,
            limits.max_event_attributes,
            limits.max_link_attributes,
        )
        # Nothing within this many of anything can be over a count limit: a quick first check.
        self.fits = min((limit for limit in counts if limit is not None), default=None)
        self._follows_parent = follows_parent

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: dict[str, Any] | None = None,
        links: Sequence[Link] = (),
    ) -> trace.Span:
        """`attributes` become the span's own (not copied): the caller gives it a fresh dict."""
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if not parent.is_valid:
            parent = None
        trace_id = parent.trace_id if parent is not None else self.ids.generate_trace_id()
        if parent is not None and self._follows_parent:
            # ParentBased with its default delegates decides nothing: the parent's decision holds
            sampled, trace_state = parent.trace_flags.sampled, parent.trace_state
        else:
            result = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
            sampled, trace_state = result.decision.is_sampled(), result.trace_state
            if sampled and result.attributes:
                attributes = {**(attributes or {}), **result.attributes}
        random = parent.trace_flags.random_trace_id if parent is not None else self.ids.is_trace_id_random()
        flags = (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT) | (TraceFlags.RANDOM_TRACE_ID if random else 0)
        span_context = SpanContext(trace_id, self.ids.generate_span_id(), False, TraceFlags(flags), trace_state)
        if not sampled:
            return NonRecordingSpan(span_context)
        span = LeanSpan(name, span_context, parent, kind, attributes if attributes is not None else {}, links, self)
        self.processor.on_start(span, parent_context=context)
        return span


class LeanSpan(ReadableSpan, trace.Span):
    """A recording span that is already the `ReadableSpan` processors and exporters read."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[Link],
        tracer: LeanTracer,
    ) -> None:
        # ReadableSpan's fields, set directly: its __init__ would only do the same, slower.
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._events: list[Event] = []
        self._links = tuple(links) if links else ()
        self._status = _UNSET
        self._resource = tracer.resource
        self._instrumentation_scope = tracer.scope
        self._instrumentation_info = None
        self._start_time = time_ns()
        self._end_time: int | None = None
        self._processor = tracer.processor
        self._tracer = tracer

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is None:
            for key, value in attributes.items():
                self.set_attribute(key, value)

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is None and key and (value := _valid(value)) is not None:
            attributes = self._attributes  # a plain dict until the span ends
            if key in attributes:  # set again: the newest, as in the SDK (the oldest go over a count limit)
                del attributes[key]  # type: ignore[attr-defined]
            attributes[key] = value  # type: ignore[index]

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None) -> None:
        if self._end_time is None:
            valid = {}
            for key, value in (attributes or {}).items():
                if key and (checked := _valid(value)) is not None:
                    valid[key] = checked
            self._events.append(Event(name, valid, timestamp if timestamp is not None else time_ns()))

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        if self._end_time is None and context.is_valid:
            self._links = (*self._links, Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's: OK is final, UNSET changes nothing."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if not isinstance(status, Status):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        recorded = {
            "exception.type": f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._bound()
        self._processor.on_end(self)

    def _bound(self) -> None:
        """The provider's span limits, as the SDK applies them (its containers also count what
        they dropped, which the exporter sends); nothing to do unless a limit bites."""
        tracer = self._tracer
        limits, truncates, fits = tracer.limits, tracer.truncates, tracer.fits
        if not truncates and (fits is None or _within(self, fits)):
            return
        if truncates or _over(self._attributes, limits.max_span_attributes):
            self._attributes = BoundedAttributes(
                limits.max_span_attributes, self._attributes, max_value_len=limits.max_span_attribute_length
            )
        length = limits.max_attribute_length
        self._events = _bounded_list(
            self._events, limits.max_events, limits.max_event_attributes, length, truncates, _event_with
        )
        self._links = _bounded_list(
            self._links, limits.max_links, limits.max_link_attributes, length, truncates, _link_with
        )


def _bounded_list(
    items: Sequence[Any],
    max_items: int | None,
    max_attributes: int | None,
    max_length: int | None,
    truncates: bool,
    rebuild: Callable[[Any, BoundedAttributes], Any],
) -> Any:
    """A span's events or links as the SDK bounds them; `items` itself when no limit bites."""
    if not items or not (
        truncates or _over(items, max_items) or any(_over(item.attributes, max_attributes) for item in items)
    ):
        return items
    bounded = BoundedList(max_items)
    for item in items:
        bounded.append(rebuild(item, BoundedAttributes(max_attributes, item.attributes, max_value_len=max_length)))
    return bounded


def _event_with(event: Event, attributes: BoundedAttributes) -> Event:
    return Event(event.name, attributes, event.timestamp)


def _link_with(link: Link, attributes: BoundedAttributes) -> Link:
    return Link(link.context, attributes)


def _within(span: LeanSpan, fits: int) -> bool:
    """No part of `span` holds more than `fits` items."""
    events, links = span._events, span._links
    return (
        len(span._attributes) <= fits
        and len(events) <= fits
        and len(links) <= fits
        and all(len(event.attributes) <= fits for event in events)
        and all(len(link.attributes or ()) <= fits for link in links)
    )


def _over(items: Any, limit: int | None) -> bool:
    return limit is not None and items is not None and len(items) > limit


def _valid(value: Any) -> Any:
    """An attribute value of the kinds OpenTelemetry's attribute spec names (a primitive, bytes,
    or a sequence of one kind of primitive, as a tuple), else None: dropped. (Newer SDKs also keep
    maps and mixed lists, which the mesh never sets on its spans.)"""
    if isinstance(value, _SIMPLE):
        return value
    if isinstance(value, bytes):  # sent as OTLP bytes, as the SDK sends them
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = tuple(value)
        kinds = {type(item) for item in items if item is not None}
        if len(kinds) <= 1 and all(issubclass(kind, _SIMPLE) for kind in kinds):
            return items
    return None
