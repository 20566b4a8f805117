"""Jaeger's query API v3, as much of it as `mesh trace` needs: find a release's traces, fetch one.

    GET /api/v3/services                        {"services": [...]}
    GET /api/v3/traces?query.service_name=…&query.attributes={"mesh.release_id": "…"}
        &query.start_time_min=…&query.start_time_max=…
                                                {"result": {"resourceSpans": [...]}}, 404 if none
    GET /api/v3/traces/{trace_id}               {"result": {"resourceSpans": [...]}}

A search needs a service name, so it runs once per mesh service Jaeger knows (all of them if it
knows none by our names). Jaeger versions without `query.attributes` ignore it; the spans found
are filtered by their `mesh.release_id` here anyway.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from bus.errors import MeshError
from bus.ops.trace_store import RELEASE_ID, TraceRef, trace_refs


class JaegerQuery:
    """`JaegerQuery("http://jaeger:16686", services=[...]).refs("rel-42")`."""

    def __init__(
        self,
        url: str,
        *,
        services: Iterable[str],
        lookback_seconds: float,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.services = list(services)
        self.lookback_seconds = lookback_seconds
        self.client = client or httpx.Client(timeout=10.0)
        self.clock = clock

    def refs(self, release_id: str) -> list[TraceRef]:
        """Every (revision, trace) of the release among the traces Jaeger holds from the lookback."""
        now = self.clock()
        window = {
            "query.start_time_min": _rfc3339(now - self.lookback_seconds),
            "query.start_time_max": _rfc3339(now + 60),  # a little ahead: clocks differ
            "query.attributes": json.dumps({RELEASE_ID: release_id}),
            "query.num_traces": "100",
        }
        found: dict[tuple[str, str, str], TraceRef] = {}
        for service in self._services():
            document = self._get("/api/v3/traces", params={"query.service_name": service, **window})
            for ref in trace_refs(document):
                key = (ref.release_id, ref.content_digest, ref.trace_id)
                if ref.release_id == release_id and (
                    key not in found or ref.start_unix_nano < found[key].start_unix_nano
                ):
                    found[key] = ref
        return sorted(found.values(), key=lambda r: r.start_unix_nano)

    def trace(self, trace_id: str) -> dict[str, Any]:
        return self._get(f"/api/v3/traces/{trace_id}")

    def _services(self) -> list[str]:
        response = self._request("/api/v3/services")
        if response.status_code == 404:
            raise MeshError(f"no Jaeger query API v3 at {self.url}; MESH_JAEGER_URL must be its query service")
        known = response.json().get("services") or []
        ours = [name for name in known if name in self.services]
        return ours or known

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """The `result` of a trace query; an empty document when Jaeger found nothing (404)."""
        response = self._request(path, params)
        if response.status_code == 404:
            return {"resourceSpans": []}
        return response.json().get("result") or {"resourceSpans": []}

    def _request(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        try:
            response = self.client.get(self.url + path, params=params)
        except httpx.HTTPError as exc:
            raise MeshError(f"Jaeger at {self.url} did not answer ({exc}); check MESH_JAEGER_URL") from None
        if response.status_code not in (200, 404):
            raise MeshError(
                f"Jaeger at {self.url} answered {response.status_code} to {path}: {response.text[:200]} "
                "(MESH_JAEGER_URL must be its query service, port 16686 by default)"
            )
        return response


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
