"""What the LLM client records in the metrics of the agent it works for, against the fake API."""

import anthropic
import httpx
import pytest

from bus.metrics import Metrics
from contracts.reviews import TokenUsage
from services.llm.budget import Meter
from services.llm.errors import CircuitOpen, ModelError
from services.llm.metrics import request_status
from services.llm.pricing import DEFAULT_PRICES
from tests.bus.test_metrics import page
from tests.fakes.anthropic_server import overloaded, rate_limited, server_error, tool_call, usage
from tests.services.llm.conftest import MODEL, REQUEST, in_seconds, unlimited


def status_error(code: int) -> anthropic.APIStatusError:
    request = httpx.Request("POST", "https://api.anthropic.com/v1/messages")
    return anthropic.APIStatusError("x", response=httpx.Response(code, request=request), body=None)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (429, "rate_limited"),
        (529, "overloaded"),
        (500, "server_error"),
        (503, "server_error"),
        (400, "client_error"),
        (408, "timeout"),
    ],
)
def test_an_http_error_maps_to_one_of_a_few_statuses(code, status):
    """Whatever the provider's error says, the label is one of a fixed few."""
    assert request_status(status_error(code)) == status


def test_errors_without_an_http_answer_have_statuses_too():
    request = httpx.Request("POST", "https://api.anthropic.com/v1/messages")
    assert request_status(TimeoutError()) == "timeout"
    assert request_status(anthropic.APITimeoutError(request)) == "timeout"
    assert request_status(anthropic.APIConnectionError(request=request)) == "connection_error"
    assert request_status(ValueError("odd")) == "error"


async def test_each_request_is_counted_by_status_and_the_answer_by_tokens_and_cost(api, make_llm):
    """A 500, a 429 and an answer: three requests by status, three gate passes, the answer's
    tokens by kind exactly as the API reported them, its cost as the meter has it; breaker closed."""
    spent = usage(input_tokens=1000, output_tokens=200, cache_read=300, cache_creation=50)
    api.reply(
        server_error(500, retry_after_ms=0), rate_limited(retry_after=1), tool_call({"verdict": "approve"}, use=spent)
    )
    agent = Metrics("security")
    meter = Meter()
    with agent.bound():
        await make_llm(max_attempts=3).create(
            model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=meter
        )
    scraped = await page(agent)

    requests = "mesh_llm_requests_total"
    assert [scraped.value(requests, model=MODEL, status=s) for s in ("server_error", "rate_limited", "ok")] == [1, 1, 1]
    assert scraped.value("mesh_llm_gate_wait_seconds_count", model=MODEL) == 3
    tokens = "mesh_llm_tokens_total"
    by_kind = {
        kind: scraped.value(tokens, model=MODEL, kind=kind) for kind in ("input", "output", "cache_read", "cache_write")
    }
    assert by_kind == {"input": 1000, "output": 200, "cache_read": 300, "cache_write": 50}
    expected_cost = DEFAULT_PRICES[MODEL].cost(
        TokenUsage(input_tokens=1000, output_tokens=200, cache_read_input_tokens=300, cache_creation_input_tokens=50)
    )
    assert scraped.value("mesh_llm_cost_usd_total", service="security", model=MODEL) == pytest.approx(expected_cost)
    assert meter.cost_usd == pytest.approx(expected_cost)
    assert scraped.value("mesh_llm_breaker_state", model=MODEL, state="closed") == 1


async def test_an_opened_breaker_shows_and_a_skipped_call_sends_no_request(api, make_llm):
    """An overloaded model opens a one-failure breaker: the gauge says open, and the next call,
    refused by the breaker, adds no request."""
    api.always(overloaded())
    llm = make_llm(breaker_failures=1)
    agent = Metrics("security")
    with agent.bound():
        with pytest.raises(ModelError):
            await llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=Meter())
        with pytest.raises(CircuitOpen):
            await llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=Meter())
    scraped = await page(agent)

    assert scraped.value("mesh_llm_requests_total", model=MODEL) == 1
    assert scraped.value("mesh_llm_requests_total", model=MODEL, status="overloaded") == 1
    assert scraped.value("mesh_llm_breaker_state", model=MODEL, state="open") == 1
    assert scraped.value("mesh_llm_breaker_state", model=MODEL, state="closed") == 0
