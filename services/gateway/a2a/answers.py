"""An answer to an input-required task: a person's decision on the approval its release waits for.

The follow-up message (`SendMessage` with the task's `taskId`) carries one data part,
`{"decision": "approve" | "reject", "note": "…"}`; the caller needs the `approvals:decide`
scope and must be one of the approval's approvers, which the coordinator checks as for any other
decision (services/gateway/approvals.py). Anything else is answered as the A2A spec answers bad
parameters (JSON-RPC -32602, `InvalidParamsError`), naming each bad field.
"""

from __future__ import annotations

from a2a.types.a2a_pb2 import Message
from a2a.utils.errors import InvalidParamsError
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.approvals import MAX_NOTE_CHARS
from contracts.validation import describe_errors


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: str = Field(pattern=r"^(approve|reject)$")
    note: str = Field(default="", max_length=MAX_NOTE_CHARS)


def answer_in(message: Message) -> Answer:
    """The decision in `message`, or InvalidParamsError saying what is wrong with it."""
    parts = [part for part in message.parts if part.WhichOneof("content") == "data"]
    if len(parts) != 1:
        raise InvalidParamsError(
            message='an answer to an input-required task is one data part: {"decision": "approve" | "reject", '
            f'"note": "…"}}; found {len(parts)} data parts',
            data={"errors": [{"field": "message.parts", "message": f"one data part expected, found {len(parts)}"}]},
        )
    body = MessageToDict(parts[0].data)
    try:
        return Answer.model_validate(body)
    except ValidationError as exc:
        errors = [
            {"field": line.split(": ", 1)[0], "message": line.split(": ", 1)[-1]} for line in describe_errors(exc)
        ]
        raise InvalidParamsError(
            message=f"the data part is not a decision: {'; '.join(describe_errors(exc))}", data={"errors": errors}
        ) from None
