"""Reading a request body at the door: JSON only (415), never more than the limit (413), and
never buffered past it — a body that claims or turns out to be too large is refused as soon as
that is known."""

from __future__ import annotations

from fastapi import Request

from services.gateway.door import Refusal


def is_json(content_type: str | None) -> bool:
    """`application/json` or any `+json` type, with or without parameters."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_body(request: Request, *, limit: int, require_json: bool = True) -> bytes:
    """The raw body, at most `limit` bytes; a Refusal (413, 415) otherwise."""
    if require_json and not is_json(request.headers.get("content-type")):
        raise Refusal(
            415,
            f"the body must be JSON (Content-Type: application/json), not {request.headers.get('content-type')!r}",
            {"Accept-Post": "application/json"},
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refusal(413, f"the body is {int(declared)} bytes; at most {limit} are accepted")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refusal(413, f"the body is over {limit} bytes, the most accepted")
        chunks.append(chunk)
    return b"".join(chunks)
