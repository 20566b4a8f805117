"""The telemetry seam: the one place on each path where tracing and metrics hook in.

Every message a service handles passes through `Telemetry.consuming` (around its handler), and
every message it publishes through `Telemetry.publishing` (which may add headers, such as a W3C
`traceparent`). This default does nothing; an implementation with spans and metrics replaces it
through `Agent(telemetry=...)` without touching the consume or publish code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping


class Telemetry:
    """No tracing, no metrics: the hooks' default."""

    @contextlib.contextmanager
    def consuming(self, service: str, subject: str, headers: Mapping[str, str]) -> Iterator[None]:
        """Around the handling of one message (its headers may carry the caller's trace)."""
        yield

    def publishing(self, service: str, subject: str, headers: dict[str, str]) -> dict[str, str]:
        """The headers to publish with: `headers`, plus whatever the trace needs."""
        return headers
