"""The HTTP side every service has: tiny ASGI endpoints served next to the consumers.

Exact paths only (AsgiFastStream routes by exact match). No endpoint here can publish to the
broker: FastStream's AsyncAPI "try it out" route is never mounted. Request headers are read as
latin-1 (what HTTP header bytes are), so a byte that is not UTF-8 is a value, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.asgi import AsgiFastStream

from bus.card_builder import etag

Scope = dict[str, Any]
Handler = Callable[[Scope], Awaitable[tuple[int, Any]]]

PROBLEM_JSON = "application/problem+json"
CARD_CACHE_CONTROL = "public, max-age=60"


async def _send(send: Callable, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in {**headers, "content-length": str(len(body))}.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _refused_unless_get(scope: Scope, send: Callable) -> bool:
    """Answer 405 (problem+json) to anything but GET/HEAD; True when it did."""
    if scope.get("method") in ("GET", "HEAD"):
        return False
    problem_body = json.dumps(problem(405, "Method not allowed", "Use GET.")).encode()
    await _send(send, 405, problem_body, {"content-type": PROBLEM_JSON, "allow": "GET, HEAD"})
    return True


def json_endpoint(handler: Handler) -> Callable:
    """An ASGI app answering GET/HEAD with the JSON `handler` returns as (status, body)."""

    async def app(scope: Scope, receive: Callable, send: Callable) -> None:
        if await _refused_unless_get(scope, send):
            return
        status, body = await handler(scope)
        payload = json.dumps(body, default=str).encode()
        content_type = PROBLEM_JSON if status >= 400 else "application/json"
        await _send(send, status, b"" if scope.get("method") == "HEAD" else payload, {"content-type": content_type})

    return app


def cached_document_endpoint(document: Callable[[], dict], *, cache_control: str = CARD_CACHE_CONTROL) -> Callable:
    """Serve a JSON document with an ETag; `If-None-Match` with the current tag gets a 304."""

    async def app(scope: Scope, receive: Callable, send: Callable) -> None:
        if await _refused_unless_get(scope, send):
            return
        status, payload, headers = conditional_json(document(), header(scope, b"if-none-match"), cache_control)
        await _send(send, status, b"" if scope.get("method") == "HEAD" else payload, headers)

    return app


def bytes_endpoint(render: Callable[[Scope], Awaitable[tuple[bytes, str]]]) -> Callable:
    """An ASGI app answering GET/HEAD with the (body, content type) `render` returns (`/metrics`)."""

    async def app(scope: Scope, receive: Callable, send: Callable) -> None:
        if await _refused_unless_get(scope, send):
            return
        body, content_type = await render(scope)
        await _send(send, 200, b"" if scope.get("method") == "HEAD" else body, {"content-type": content_type})

    return app


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value, decoded as HTTP header bytes are (latin-1), so no byte is an error.

    Several fields of the same name are joined with ", " (RFC 9110 §5.3).
    """
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]
    return ", ".join(values) if values else None


def conditional_json(
    body: dict, if_none_match: str | None, cache_control: str = CARD_CACHE_CONTROL
) -> tuple[int, bytes, dict[str, str]]:
    """(status, payload, headers) for a cacheable JSON document: 304 when the client's tag matches."""
    tag = etag(body)
    if if_none_match and (tag in {t.strip() for t in if_none_match.split(",")} or if_none_match.strip() == "*"):
        return 304, b"", {"etag": tag, "cache-control": cache_control}
    headers = {"etag": tag, "cache-control": cache_control, "content-type": "application/json"}
    return 200, json.dumps(body).encode(), headers


class ServiceApp(AsgiFastStream):
    """FastStream's ASGI app, answering a path it does not serve with a 404 problem that names the
    paths it does serve (FastStream's own answer is plain text blaming the protocol)."""

    async def not_found(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http":
            await super().not_found(scope, receive, send)
            return
        served = ", ".join(path for path, _ in self.routes)
        detail = f"nothing at {scope.get('path', '')[:200]}; this service serves {served}"
        body = json.dumps(problem(404, "Not found", detail)).encode()
        await _send(send, 404, b"" if scope.get("method") == "HEAD" else body, {"content-type": PROBLEM_JSON})


def problem(status: int, title: str, detail: str) -> dict:
    """An RFC 9457 problem body."""
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}
