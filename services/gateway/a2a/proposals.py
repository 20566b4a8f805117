"""The release proposal an A2A message carries: one data part holding the `release.proposed`
contract as JSON. Anything else is the caller's mistake, answered as the A2A spec answers bad
parameters (JSON-RPC -32602, `InvalidParamsError`) with every bad field named, before a task
exists or anything is published."""

from __future__ import annotations

from a2a.types.a2a_pb2 import Message
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict

from contracts.releases import ReleaseProposed
from services.gateway.front import InvalidEvent, parse_event

EVENT_TYPE = "release.proposed"
JSON_TYPES = ("", "application/json")


def proposal_in(message: Message) -> ReleaseProposed:
    """The proposal in `message`, or InvalidParamsError saying what is wrong with it (its `data`
    lists `{field, message}` per bad field, which the SDK turns into field violations)."""
    parts = [part for part in message.parts if part.WhichOneof("content") == "data"]
    if len(parts) != 1:
        found = "no data part" if not parts else f"{len(parts)} data parts"
        raise _invalid(
            f"the message has {found}; send exactly one data part holding the {EVENT_TYPE} contract (JSON)",
            [{"field": "message.parts", "message": f"one data part expected, found {len(parts)}"}],
        )
    part = parts[0]
    if part.media_type not in JSON_TYPES:
        raise _invalid(
            f"the data part is {part.media_type!r}; it must be application/json",
            [{"field": "message.parts.mediaType", "message": "application/json expected"}],
        )
    body = MessageToDict(part.data)
    if not isinstance(body, dict):
        raise _invalid(
            f"the data part holds a {type(body).__name__}, not a {EVENT_TYPE} object",
            [{"field": "message.parts.data", "message": "a JSON object expected"}],
        )
    try:
        return parse_event(EVENT_TYPE, body)
    except InvalidEvent as exc:
        raise _invalid(f"the data part is not a valid {EVENT_TYPE}: {exc}", exc.errors) from None


def _invalid(message: str, errors: list[dict[str, str]]) -> InvalidParamsError:
    return InvalidParamsError(message=message, data={"errors": errors})
