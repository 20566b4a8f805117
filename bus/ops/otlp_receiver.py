"""A small OTLP/HTTP trace receiver: what the services' OpenTelemetry exporters send to when no
Jaeger or collector runs (`mesh up`'s local trace store, and the tests).

It takes `POST /v1/traces` as protobuf (the exporters' default) or JSON and hands each export to
a callback as OTLP JSON — the shape Jaeger's query API v3 returns, with trace and span ids in
hex — so one renderer serves spans from here and from Jaeger (`mesh trace`). With `raw=True`
the callback gets the decoded `ExportTraceServiceRequest` instead: converting to JSON costs far
more than anything else here, and a store that keeps protobuf need not pay it per span.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MAX_BODY = 16 * 1024 * 1024  # an exporter's batch is far smaller; anything larger is refused
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """`{"resourceSpans": [...]}` with hex ids, as OTLP/JSON and Jaeger v3 write them."""
    body = MessageToDict(request)
    for resource in body.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                _hex_ids(span)
                for link in span.get("links", []):
                    _hex_ids(link)
    return body


def _hex_ids(item: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        if item.get(name):
            item[name] = base64.b64decode(item[name]).hex()


def parse_export(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """An export request from its wire form (protobuf, or OTLP/JSON with hex ids)."""
    request = ExportTraceServiceRequest()
    if content_type.startswith("application/json"):
        data = json.loads(body)
        for resource in data.get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    for name in _ID_FIELDS:
                        if span.get(name):
                            span[name] = base64.b64encode(bytes.fromhex(span[name])).decode()
        ParseDict(data, request)
    else:
        request.ParseFromString(body)
    return request


class ExportRefused(Exception):
    """Raised by `on_export` to turn an export away for now (its store is full or not ready):
    the exporter is answered 503 and sends it again later."""


class OtlpReceiver:
    """`with OtlpReceiver(on_export) as receiver:` then point exporters at `receiver.endpoint`.

    `on_export` runs on the request's thread and should return quickly; it may raise
    `ExportRefused`."""

    def __init__(
        self,
        on_export: Callable[[Any], None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        raw: bool = False,
    ) -> None:
        self.on_export = on_export
        self.raw = raw
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The value of `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OtlpReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # keep-alive: an exporter posts every few seconds, and a new connection each time
            # costs both sides more than the export (every answer carries its Content-Length)
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/traces":
                    self.close_connection = True  # its body is left unread
                    self._answer(404, b"only /v1/traces is served here")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self.close_connection = True  # its body is left unread
                    self._answer(413, b"export too large")
                    return
                try:
                    request = parse_export(self.rfile.read(length), self.headers.get("Content-Type", ""))
                except Exception:  # noqa: BLE001 - any undecodable body is the sender's error
                    self._answer(400, b"not an OTLP trace export")
                    return
                try:
                    receiver.on_export(request if receiver.raw else otlp_json(request))
                except ExportRefused as exc:
                    # 503 is retryable: the exporter sends the batch again after a backoff
                    self._answer(503, str(exc).encode(), retry_after=1)
                    return
                self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

            def _answer(
                self, status: int, body: bytes, content_type: str = "text/plain", retry_after: int | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # quiet: exporters post every few seconds
                return None

        return Handler
