"""Fallback chains from configuration, and the walk along one."""

import pytest

from contracts.reviews import AttemptStatus
from services.llm.chain import Step, parse_chain, parse_chains, run_chain
from services.llm.errors import BadAnswer, CircuitOpen, LLMConfigError, ModelError


def test_chains_parse_in_every_accepted_form():
    """Comma lists, `>` arrows, JSON and per-agent compact entries all give the same chains."""
    assert parse_chain("claude-sonnet-4-6, claude-haiku-4-5 ,offline") == [
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "offline",
    ]
    assert parse_chain("a>offline") == ["a", "offline"]
    assert parse_chains("security=a>b>offline,compliance=offline") == {
        "security": ["a", "b", "offline"],
        "compliance": ["offline"],
    }
    assert parse_chains('{"security": ["a", "offline"]}') == {"security": ["a", "offline"]}


@pytest.mark.parametrize(
    ("value", "message"),
    [("a,b", "must end in 'offline'"), ("a,offline,b,offline", "only be the last"), ("a,a,offline", "twice")],
)
def test_invalid_chains_are_refused(value, message):
    """A chain must end in offline, have it once, and name each model once."""
    with pytest.raises(LLMConfigError, match=message):
        parse_chain(value)


def test_a_bad_agent_chain_names_the_agent():
    """The error for one agent's chain says which agent's."""
    with pytest.raises(LLMConfigError, match=r"MESH_LLM_CHAINS\[security\]"):
        parse_chains("security=a>b")


async def test_the_walk_records_each_step_and_stops_at_the_first_answer():
    """Failed and skipped steps are recorded with their reasons; the first answer ends the walk."""
    asked = []

    async def ask(model, meter):
        asked.append(model)
        if model == "a":
            meter.requests = 1
            raise ModelError("the API answered HTTP 529 (OverloadedError)")
        if model == "b":
            raise CircuitOpen("the circuit for b is open")
        return f"answer from {model}"

    result = await run_chain([Step("a"), Step("b"), Step("c"), Step("d")], ask)
    assert (result.answer, result.model, asked) == ("answer from c", "c", ["a", "b", "c"])
    assert [(a.model, a.status, a.requests) for a in result.attempts] == [
        ("a", AttemptStatus.FAILED, 1),
        ("b", AttemptStatus.SKIPPED, 0),
        ("c", AttemptStatus.ANSWERED, 0),
    ]
    assert "529" in result.attempts[0].reason and result.attempts[2].reason == ""


async def test_an_unsure_answer_escalates_and_is_kept_if_nothing_better_comes():
    """A judged-unsure answer escalates; when the stronger model fails, the unsure answer stands."""

    async def ask(model, meter):
        if model == "strong":
            raise BadAnswer("no valid tool call")
        return 0.5

    steps = [Step("cheap", judge=lambda c: "too unsure" if c < 0.8 else None), Step("strong")]
    result = await run_chain(steps, ask)
    assert (result.answer, result.model) == (0.5, "cheap")
    assert result.attempts[0].status is AttemptStatus.ANSWERED
    assert "no stronger model answered" in result.attempts[0].reason
    assert result.attempts[1].status is AttemptStatus.FAILED


async def test_no_answer_at_all_leaves_the_answer_empty():
    """Every model failing gives no answer (the caller applies `offline`)."""

    async def ask(model, meter):
        raise ModelError("down")

    result = await run_chain([Step("a"), Step("b")], ask)
    assert result.answer is None and [a.status for a in result.attempts] == [AttemptStatus.FAILED] * 2
