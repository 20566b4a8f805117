"""Every HTTP edge of the services answers a malformed header with 200/304/4xx, never a 500.

Raw bytes over a real socket to the real service processes (uvicorn, as `mesh up` runs them):
an HTTP client library would refuse to send some of these headers at all.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import pytest

# Header lines as bytes: values that are not UTF-8, and a name that is not a token.
MALFORMED = {
    "if-none-match not utf-8": b"If-None-Match: \xff",
    "if-none-match broken sequence": b'If-None-Match: "\xc3\x28", W/"\xfe"',
    "unknown header not utf-8": b"X-Junk: \xff\xfe\xfd",
    "accept not utf-8": b"Accept: application/\xffjson",
    "header name not a token": b"X-\xff: 1",
}


def get(url: str, path: str, header_line: bytes) -> int:
    """Send `GET path` with `header_line` as raw bytes; the status code (0: connection closed with no answer)."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(
            b"GET "
            + path.encode()
            + b" HTTP/1.1\r\nHost: localhost\r\n"
            + header_line
            + b"\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


@pytest.fixture
async def edges(settings, launch):
    """`(url, path)` for every HTTP route of a reviewer (card, schemas, probes, metrics) and of the registry."""
    mesh = await asyncio.to_thread(launch, settings, ["registry", "security"])
    registry, security = (next(s.url for s in mesh.services if s.name == n) for n in ("registry", "security"))
    routes = [
        (security, p)
        for p in (
            "/.well-known/agent-card.json",
            "/schemas/release.proposed.json",
            "/schemas/review.submitted.json",
            "/healthz",
            "/readyz",
            "/metrics",
        )
    ]
    routes += [
        (registry, p)
        for p in (
            "/agents",
            "/agents/security",
            "/agents/security/card",
            "/agents/nobody",
            "/.well-known/agent-card.json",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        )
    ]
    for url, path in routes:  # each route works with ordinary headers first
        assert await asyncio.to_thread(get, url, path, b"Accept: */*") == (404 if path.endswith("nobody") else 200), (
            path
        )
    return routes


@pytest.mark.parametrize("header", MALFORMED)
async def test_no_route_answers_a_malformed_header_with_a_500(edges, header):
    """With a non-UTF-8 header value (or an invalid header name), every card, schema, probe and
    registry route answers 200, 304 or 4xx — never 5xx — and still answers normally afterwards."""
    line = MALFORMED[header]
    answers = {url + path: await asyncio.to_thread(get, url, path, line) for url, path in edges}
    assert {route: status for route, status in answers.items() if status >= 500 or status == 0} == {}
    url, path = edges[0]
    assert await asyncio.to_thread(get, url, path, b"Accept: */*") == 200
