"""One structured answer from the first model of a chain that gives one.

The shape the digest's summary and the watch's advice share: walk the chain (offline left out:
the caller has its own offline answer), force one tool call per model, stop at the first valid
answer. None when no model answered, with the reason of each attempt logged under `event`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from pydantic import BaseModel

from services.llm.budget import RoundBudget
from services.llm.chain import OFFLINE, Step, run_chain
from services.llm.structured import ask_for_tool

if TYPE_CHECKING:
    from services.llm.client import LLMClient

M = TypeVar("M", bound=BaseModel)

log = structlog.get_logger(__name__)


def online_models(chain: list[str]) -> list[str]:
    """The chain's models that a model client can ask (`offline` is the caller's own answer)."""
    return [model for model in chain if model != OFFLINE]


async def first_answer(
    llm: LLMClient,
    models: list[str],
    *,
    request: dict[str, Any],
    prompt: str,
    schema: type[M],
    deadline: float,
    budget: RoundBudget,
    agent: str,
    event: str,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[M, str] | None:
    """The first valid `schema` answer to `prompt` and the model that gave it, by `deadline` on `clock`."""

    async def ask(model, meter):
        answer, response = await ask_for_tool(
            llm,
            model=model,
            request=request,
            prompt=prompt,
            schema=schema,
            deadline=deadline,
            budget=budget,
            meter=meter,
            agent=agent,
        )
        return answer, response.model

    result = await run_chain([Step(model) for model in models], ask, clock=clock, agent=agent)
    if result.answer is None:
        log.warning(event, why="; ".join(f"{a.model} {a.status.value}: {a.reason}" for a in result.attempts))
        return None
    return result.answer
