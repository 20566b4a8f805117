"""How a model request shows in the metrics (bus/metrics.py): one count per request, by status.

The status is one of a fixed few, whatever the provider says, so the label stays small:
`ok`, `rate_limited` (429), `overloaded` (529), `server_error` (other 5xx), `client_error`
(other 4xx), `timeout`, `connection_error`, `cancelled` (the caller stopped waiting), `error`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anthropic

from bus.metrics import metrics


def request_status(exc: BaseException) -> str:
    """The `status` label of a request that ended in `exc`."""
    if isinstance(exc, anthropic.APIStatusError):
        code = exc.status_code
        if code == 429:
            return "rate_limited"
        if code == 529:
            return "overloaded"
        if code == 408:
            return "timeout"
        return "server_error" if code >= 500 else "client_error"
    if isinstance(exc, TimeoutError | anthropic.APITimeoutError):
        return "timeout"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection_error"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "error"


@contextlib.asynccontextmanager
async def counted_request(model: str) -> AsyncIterator[None]:
    """Around one request to the API: counts it in `mesh_llm_requests_total` by how it ended."""
    try:
        yield
    except BaseException as exc:
        metrics().llm_request(model, request_status(exc))
        raise
    metrics().llm_request(model, "ok")
