"""The telemetry seam: the one place on each path where tracing and metrics hook in.

Every message a service handles passes through `Telemetry.consuming` (around its handling, from
parse to ack), and every message it publishes through `Telemetry.publishing` (around the publish
and its PubAck wait; it gives the headers to send, such as a W3C `traceparent`). In between,
the runtime and the handlers describe what happened on the current span: `received` (the
parsed message: release id, revision), `span` (a step of its own, like a dead letter), `event`
(a moment of the current span: a KV compare-and-set, a deadline firing), `annotate`, `failed`;
and `trace_id` puts the flow's trace id on the wire.

This default does nothing: no span, no header, no SDK object; `bus.tracing.TracingTelemetry`
(OpenTelemetry, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) replaces it through
`Agent(telemetry=...)` without touching the consume or publish code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager as ContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from pydantic import BaseModel

Attributes = Mapping[str, Any]  # str, bool, int, float, or a list of one of them

_NOTHING = contextlib.nullcontext()


class Telemetry:
    """No tracing, no metrics: the hooks' default."""

    traces = False  # spans are recorded (log lines then carry trace and span ids)

    def consuming(self, service: str, message: Msg) -> ContextManager[None]:
        """Around the handling of one JetStream message (its headers may carry the caller's trace)."""
        return _NOTHING

    def received(self, model: BaseModel) -> None:
        """The message being handled, parsed: what it is about (release id, revision) goes on its span."""

    def publishing(
        self, service: str, subject: str, headers: dict[str, str], model: BaseModel | None = None
    ) -> ContextManager[dict[str, str]]:
        """Around one publish and its PubAck; gives the headers to send: `headers`, plus the trace's."""
        return contextlib.nullcontext(headers)

    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        parent: Mapping[str, str] | None = None,
        link: Mapping[str, str] | None = None,
    ) -> ContextManager[None]:
        """A step of its own within the current span, or under the trace in `parent` headers; `link`
        headers name another trace it relates to (a dead letter's original message)."""
        return _NOTHING

    def annotate(self, attributes: Attributes) -> None:
        """Facts about the current span."""

    def event(self, name: str, attributes: Attributes | None = None) -> None:
        """Something that happened at one moment of the current span (a deadline fired)."""

    def failed(self, reason: str) -> None:
        """The current span's work failed, and why."""

    def start(self) -> None:
        """Begin exporting (the process is about to handle or send messages)."""

    def trace_id(self) -> str | None:
        """The current trace id (32 hex digits), for the messages and log lines of this flow."""
        return None

    async def flush(self) -> None:
        """Send what is buffered (on shutdown)."""
