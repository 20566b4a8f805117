"""Structured output through tool use: the answer is a forced tool call, validated by a model.

A missing, malformed or refused tool call gets exactly one repair attempt: the conversation is
replayed with the model's answer and a precise complaint (a `tool_result` with `is_error` for a
bad tool input), and the tool is forced again. If that answer is no better, BadAnswer — the
chain moves on. An unvalidated answer never leaves this module.
"""

from __future__ import annotations

from typing import Any, TypeVar

from anthropic.types import Message
from pydantic import BaseModel, ValidationError

from contracts.validation import describe_errors
from services.llm.budget import Meter, RoundBudget
from services.llm.client import LLMClient
from services.llm.errors import BadAnswer, ModelUnavailable

M = TypeVar("M", bound=BaseModel)


def _replayable(content: list[Any]) -> list[dict[str, Any]]:
    """The assistant's blocks as request content (only the fields the API accepts back)."""
    blocks = []
    for block in content:
        if block.type == "tool_use":
            blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
        elif block.type == "text" and block.text:
            blocks.append({"type": "text", "text": block.text})
    return blocks


def read_tool_call(response: Message, tool: str, schema: type[M]) -> tuple[M | None, str, dict[str, Any] | None]:
    """(answer, "", None), or (None, what is wrong, the user message that asks for a repair)."""
    calls = [block for block in response.content if block.type == "tool_use"]
    call = next((block for block in calls if block.name == tool), None)
    ask_again = f"Answer only by calling the {tool} tool, exactly once, with input that matches its schema."
    if call is None:
        problem = f"the model did not call {tool} (stop_reason={response.stop_reason})"
        return None, problem, {"role": "user", "content": ask_again}
    try:
        return schema.model_validate(call.input), "", None
    except ValidationError as exc:
        details = "; ".join(describe_errors(exc, whole="input", limit=5))
        cut = " (the answer was cut off at max_tokens)" if response.stop_reason == "max_tokens" else ""
        problem = f"the model's {tool} input was invalid{cut} ({exc.error_count()} error(s): {details})"
        results = [
            {
                "type": "tool_result",
                "tool_use_id": block.id,
                "is_error": True,
                "content": f"Invalid input: {details}. {ask_again}" if block is call else "Not used.",
            }
            for block in calls
        ]
        return None, problem, {"role": "user", "content": results}


async def ask_for_tool(
    llm: LLMClient,
    *,
    model: str,
    request: dict[str, Any],
    prompt: str,
    schema: type[M],
    deadline: float,
    budget: RoundBudget,
    meter: Meter,
    agent: str | None = None,
) -> tuple[M, Message]:
    """Ask `model` to answer `prompt` by calling the tool forced in `request["tool_choice"]`.

    Returns the validated tool input and the response it came from; raises ModelUnavailable.
    `agent` names the asker on the calls' spans.
    """
    tool = request["tool_choice"]["name"]
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    response = await llm.create(
        model=model,
        request={**request, "messages": messages},
        deadline=deadline,
        budget=budget,
        meter=meter,
        agent=agent,
    )
    answer, problem, follow_up = read_tool_call(response, tool, schema)
    if answer is not None:
        return answer, response
    replay = _replayable(response.content)
    if replay:
        messages = [*messages, {"role": "assistant", "content": replay}, follow_up]
    else:  # an empty answer (a refusal) cannot be replayed: ask afresh, with the reminder
        messages = [{"role": "user", "content": f"{prompt}\n\n{follow_up['content']}"}]
    try:
        response = await llm.create(
            model=model,
            request={**request, "messages": messages},
            deadline=deadline,
            budget=budget,
            meter=meter,
            agent=agent,
        )
    except ModelUnavailable as exc:
        raise BadAnswer(f"{problem}; the repair attempt was not answered: {exc.reason}") from exc
    answer, second, _ = read_tool_call(response, tool, schema)
    if answer is None:
        raise BadAnswer(f"{problem}; after one repair attempt, {second}")
    return answer, response
