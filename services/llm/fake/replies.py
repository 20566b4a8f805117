"""Canned answers for the fake Anthropic server, shaped exactly like the Messages API's.

api.reply(tool_call({"verdict": "reject", ...}), server_error(500))   # next two requests
api.reply(rate_limited(retry_after=1), model="claude-sonnet-4-6")      # next sonnet request
api.always(overloaded(), model="claude-sonnet-4-6")                    # every sonnet request
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

_ids = itertools.count(1)


def next_id(prefix: str) -> str:
    return f"{prefix}_fake_{next(_ids):06d}"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer; `delay` seconds pass before it is sent. A message body whose `model` is
    None gets the requested model."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def usage(
    input_tokens: int = 812, output_tokens: int = 143, cache_read: int | None = 0, cache_creation: int | None = 1290
) -> dict[str, Any]:
    """A `usage` object; None mirrors fields the API leaves null."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
    }


def message(
    content: list[dict[str, Any]],
    stop_reason: str,
    *,
    model: str | None = None,
    use: dict[str, Any] | None = None,
    delay: float = 0.0,
) -> Reply:
    body = {
        "id": next_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": use if use is not None else usage(),
    }
    return Reply(body=body, headers={"request-id": next_id("req")}, delay=delay)


def tool_call(
    tool_input: Any, *, name: str = "submit_review", model: str | None = None, use: dict[str, Any] | None = None
) -> Reply:
    """The model called tool `name` with `tool_input` (valid or not: this reply does not check)."""
    block = {"type": "tool_use", "id": next_id("toolu"), "name": name, "input": tool_input}
    return message([block], "tool_use", model=model, use=use)


def text_only(text: str = "I think this release looks fine.", *, model: str | None = None) -> Reply:
    """The model answered in prose and called no tool."""
    return message([{"type": "text", "text": text}], "end_turn", model=model)


def refusal(*, model: str | None = None) -> Reply:
    """The model declined to answer (`stop_reason: refusal`, no content)."""
    return message([], "refusal", model=model)


def error(status: int, kind: str, text: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"type": "error", "error": {"type": kind, "message": text}, "request_id": next_id("req")}
    return Reply(status=status, body=body, headers={"request-id": body["request_id"], **(headers or {})})


def server_error(status: int = 500, *, retry_after_ms: int = 1) -> Reply:
    """An API error; `retry-after-ms` keeps retry waits short in tests."""
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    return error(status, kind, f"fake {status}", {"retry-after-ms": str(retry_after_ms)})


def rate_limited(retry_after: int = 1, *, limit: int | None = None) -> Reply:
    """HTTP 429 the way the API sends it: `retry-after` in whole seconds."""
    headers = {"retry-after": str(retry_after)}
    if limit is not None:
        headers |= {"anthropic-ratelimit-requests-limit": str(limit), "anthropic-ratelimit-requests-remaining": "0"}
    return error(429, "rate_limit_error", "Number of requests has exceeded your per-minute rate limit.", headers)


def overloaded() -> Reply:
    """HTTP 529: the model is overloaded (no retry-after)."""
    return error(529, "overloaded_error", "Overloaded")


def slow(reply: Reply, seconds: float) -> Reply:
    """`reply`, sent only after `seconds` (to make client timeouts fire)."""
    return replace(reply, delay=seconds)
