"""Structured output through a forced tool call: validation and exactly one repair attempt."""

import pytest
from pydantic import BaseModel, Field

from services.llm.budget import Meter
from services.llm.errors import BadAnswer
from services.llm.structured import ask_for_tool
from tests.fakes.anthropic_server import overloaded, refusal, text_only, tool_call
from tests.services.llm.conftest import MODEL, REQUEST, in_seconds, unlimited


class Answer(BaseModel):
    verdict: str = Field(pattern="^(approve|reject)$")
    confidence: float = Field(ge=0, le=1)


async def ask(llm, meter=None):
    return await ask_for_tool(
        llm,
        model=MODEL,
        request=REQUEST,
        prompt="Review this.",
        schema=Answer,
        deadline=in_seconds(20),
        budget=unlimited(),
        meter=meter or Meter(),
    )


async def test_malformed_input_gets_one_repair_with_the_errors_as_a_tool_result(api, make_llm):
    """A bad tool input is answered with an is_error tool_result naming the errors; the fixed input is used."""
    api.reply(tool_call({"verdict": "ship-it", "confidence": 7}, name="answer"))
    meter = Meter()
    answer, _ = await ask(make_llm(), meter)
    assert answer == Answer(verdict="approve", confidence=0.9)  # built by the fake from the schema
    first, repair = (r.body for r in api.requests)
    assert meter.requests == 2
    assistant, complaint = repair["messages"][1], repair["messages"][2]
    assert assistant["content"][0]["input"] == {"verdict": "ship-it", "confidence": 7}
    (result,) = complaint["content"]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert result["tool_use_id"] == assistant["content"][0]["id"]
    assert "verdict" in result["content"] and "confidence" in result["content"]
    assert api.stats()["by_status"] == {"200": 2}  # the fake (like the API) accepted the repair turn


async def test_a_prose_answer_is_asked_again_for_the_tool(api, make_llm):
    """No tool call: one more request that says to answer only through the tool."""
    api.reply(text_only("Looks fine."))
    await ask(make_llm())
    repair = api.requests[1].body["messages"]
    assert [m["role"] for m in repair] == ["user", "assistant", "user"]
    assert "Answer only by calling the answer tool" in repair[2]["content"]


async def test_a_refusal_with_no_content_is_asked_afresh(api, make_llm):
    """A refusal leaves nothing to replay: the repair re-asks in a single user turn."""
    api.reply(refusal())
    await ask(make_llm())
    repair = api.requests[1].body["messages"]
    assert len(repair) == 1 and "Answer only by calling" in repair[0]["content"]


async def test_a_second_bad_answer_is_a_bad_answer_never_an_unvalidated_one(api, make_llm):
    """Malformed twice: BadAnswer describing both, after exactly two requests."""
    api.reply(tool_call({"verdict": "maybe"}, name="answer"), text_only())
    with pytest.raises(
        BadAnswer, match=r"input was invalid .*; after one repair attempt, the model did not call answer"
    ):
        await ask(make_llm())
    assert len(api.requests) == 2


async def test_a_failed_repair_call_is_a_bad_answer(api, make_llm):
    """The repair request itself failing (529) ends the step as a bad answer, saying both."""
    api.reply(tool_call({"verdict": "maybe"}, name="answer"), overloaded())
    with pytest.raises(BadAnswer, match="the repair attempt was not answered: the API answered HTTP 529"):
        await ask(make_llm())
