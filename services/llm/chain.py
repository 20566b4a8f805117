"""An agent's ordered fallback chain of models, from configuration, and the walk along it.

A chain is model ids ending in `offline` (the rules, which need no network and never fail):
`claude-sonnet-4-6,claude-haiku-4-5,offline`. Each model step either answers, or records why
the chain moved on (`failed`, `skipped`, or `escalated` when the answer was not sure enough);
the caller applies `offline` when no model answered.

In a trace the walk is one `llm.chain` span around the steps' `chat {model}` spans, with a
`fallback` event for each step that gave no accepted answer: which model, why, who is next.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from contracts.reviews import AttemptStatus, ModelAttempt
from services.llm.budget import Meter
from services.llm.errors import CallSkipped, LLMConfigError, ModelUnavailable
from services.llm.setting_text import compact_entries, json_setting

T = TypeVar("T")
OFFLINE = "offline"
_tracer = trace.get_tracer(__name__)


def parse_chain(value: str | list[str], *, field_name: str = "MESH_LLM_CHAIN") -> list[str]:
    """A validated chain from `a,b,offline` (or `a>b>offline`, or a list)."""
    items = value if isinstance(value, list) else value.replace(">", ",").split(",")
    chain = [item.strip() for item in items if item.strip()]
    if not chain or chain[-1] != OFFLINE:
        raise LLMConfigError(f"{field_name}: the chain {chain!r} must end in {OFFLINE!r}, e.g. a-model,offline.")
    if OFFLINE in chain[:-1]:
        raise LLMConfigError(f"{field_name}: {OFFLINE!r} can only be the last step of {chain!r}.")
    if len(set(chain)) != len(chain):
        raise LLMConfigError(f"{field_name}: the chain {chain!r} names a model twice.")
    return chain


def parse_chains(value: str) -> dict[str, list[str]]:
    """Per-agent chains: JSON `{"security": ["claude-sonnet-4-6", "offline"]}` or
    `security=claude-sonnet-4-6>claude-haiku-4-5>offline,compliance=claude-haiku-4-5>offline`."""
    value = value.strip()
    if not value:
        return {}
    raw = json_setting(value, "MESH_LLM_CHAINS")
    if raw is not None:
        if not isinstance(raw, dict) or not all(isinstance(v, list | str) for v in raw.values()):
            raise LLMConfigError("MESH_LLM_CHAINS must be a JSON object of agent -> list of model ids.")
    else:
        raw = {}
        for item in compact_entries(value):
            agent, sep, chain = item.partition("=")
            if not sep or not agent.strip():
                raise LLMConfigError(f"MESH_LLM_CHAINS entry {item!r} should look like agent=model>model>offline.")
            raw[agent.strip()] = chain.split(">")
    return {agent: parse_chain(chain, field_name=f"MESH_LLM_CHAINS[{agent}]") for agent, chain in raw.items()}


@dataclass(frozen=True)
class Step(Generic[T]):
    """One model of the chain; `judge(answer)` returns a reason to escalate, or None to accept."""

    model: str
    judge: Callable[[T], str | None] | None = None


@dataclass
class ChainResult(Generic[T]):
    """The answer (None when no model answered), the model it came from, and every step's record."""

    answer: T | None = None
    model: str | None = None
    attempts: list[ModelAttempt] = field(default_factory=list)


def _record(model: str, status: AttemptStatus, reason: str, meter: Meter, seconds: float) -> ModelAttempt:
    return ModelAttempt(
        model=model,
        status=status,
        reason=reason,
        requests=meter.requests,
        tokens=meter.tokens,
        cost_usd=round(meter.cost_usd, 8),
        seconds=round(seconds, 3),
    )


def _fell_back(span: Span, attempt: ModelAttempt, next_model: str, error: str | None = None) -> None:
    """The `fallback` event of a step that gave no accepted answer."""
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {
        "mesh.llm.model": attempt.model,
        "mesh.llm.status": attempt.status.value,
        "mesh.llm.reason": attempt.reason,
        "mesh.llm.next_model": next_model,
    }
    if error:
        attributes["error.type"] = error
    span.add_event("fallback", attributes)


async def run_chain(
    steps: list[Step[T]],
    ask: Callable[[str, Meter], Awaitable[T]],
    *,
    clock: Callable[[], float] = time.monotonic,
    agent: str | None = None,
    tracer: Tracer | None = None,
) -> ChainResult[T]:
    """Ask each step's model in order until one answers and its judge accepts the answer.

    An escalated answer is kept: if every stronger model then fails, it is the answer after all.
    The walk is one `llm.chain` span (from `tracer`), `agent` its `mesh.agent`.
    """
    chain = [*(step.model for step in steps), OFFLINE]
    attributes: dict[str, Any] = {"mesh.llm.chain": chain, **({"mesh.agent": agent} if agent else {})}
    with (tracer or _tracer).start_as_current_span("llm.chain", attributes=attributes) as span:
        result = await _walk(steps, ask, clock, span)
        if span.is_recording():
            span.set_attributes(
                {
                    "mesh.llm.answered_by": result.model or OFFLINE,
                    "mesh.llm.requests": sum(attempt.requests for attempt in result.attempts),
                    "mesh.llm.cost_usd": sum(attempt.cost_usd for attempt in result.attempts),
                }
            )
        return result


async def _walk(
    steps: list[Step[T]], ask: Callable[[str, Meter], Awaitable[T]], clock: Callable[[], float], span: Span
) -> ChainResult[T]:
    result: ChainResult[T] = ChainResult()
    kept: tuple[int, T, str] | None = None  # (attempt index, answer, model) of an escalated answer
    for index, step in enumerate(steps):
        # after the last step: an escalated answer kept from earlier, else the rules
        next_model = steps[index + 1].model if index + 1 < len(steps) else (kept[2] if kept else OFFLINE)
        meter, started = Meter(), clock()
        try:
            answer = await ask(step.model, meter)
        except ModelUnavailable as exc:
            skipped = isinstance(exc, CallSkipped) and meter.requests == 0
            status = AttemptStatus.SKIPPED if skipped else AttemptStatus.FAILED
            result.attempts.append(_record(step.model, status, exc.reason, meter, clock() - started))
            _fell_back(span, result.attempts[-1], next_model, type(exc).__name__)
            continue
        escalate = step.judge(answer) if step.judge else None
        if escalate:
            result.attempts.append(_record(step.model, AttemptStatus.ESCALATED, escalate, meter, clock() - started))
            if index + 1 < len(steps):  # escalated at the last step, the answer stands: no fallback
                _fell_back(span, result.attempts[-1], next_model)
            kept = (len(result.attempts) - 1, answer, step.model)
            continue
        result.attempts.append(_record(step.model, AttemptStatus.ANSWERED, "", meter, clock() - started))
        result.answer, result.model = answer, step.model
        return result
    if kept is not None:
        index, answer, model = kept
        attempt = result.attempts[index]
        reason = f"{attempt.reason}; no stronger model answered, so this answer stands"
        result.attempts[index] = attempt.model_copy(update={"status": AttemptStatus.ANSWERED, "reason": reason})
        result.answer, result.model = answer, model
    return result
