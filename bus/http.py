"""The HTTP side every service has: tiny ASGI endpoints served next to the consumers.

Exact paths only (AsgiFastStream routes by exact match). No endpoint here can publish to the
broker: FastStream's AsyncAPI "try it out" route is never mounted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Handler = Callable[[Scope], Awaitable[tuple[int, Any]]]

PROBLEM_JSON = "application/problem+json"


def json_endpoint(handler: Handler) -> Callable:
    """An ASGI app answering GET/HEAD with the JSON `handler` returns (status, body)."""

    async def app(scope: Scope, receive: Callable, send: Callable) -> None:
        if scope.get("method") not in ("GET", "HEAD"):
            status, body, content_type = 405, problem(405, "Method not allowed", "Use GET."), PROBLEM_JSON
        else:
            status, body = await handler(scope)
            content_type = PROBLEM_JSON if status >= 400 else "application/json"
        payload = json.dumps(body, default=str).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else payload})

    return app


def problem(status: int, title: str, detail: str) -> dict:
    """An RFC 9457 problem body."""
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}
