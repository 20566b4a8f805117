"""The one LLM client against the fake Messages API: gate, retries, timeouts, breaker, cost."""

import asyncio
import time

import pytest

from contracts.reviews import TokenUsage
from services.llm.breaker import BreakerState
from services.llm.budget import Meter, RoundBudget
from services.llm.client import shared_client
from services.llm.errors import BudgetExhausted, CircuitOpen, ModelError, NoTimeLeft
from services.llm.pricing import DEFAULT_PRICES
from tests.fakes.anthropic_server import overloaded, rate_limited, server_error, slow, tool_call, usage
from tests.services.llm.conftest import MODEL, REQUEST, in_seconds, unlimited


async def test_a_429_waits_the_retry_after_then_succeeds(api, make_llm):
    """HTTP 429 with `retry-after: 1` is retried after at least one second, and the answer is used."""
    api.reply(rate_limited(retry_after=1))
    meter = Meter()
    response = await make_llm().create(
        model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=meter
    )
    first, second = api.requests
    assert second.at - first.at >= 1.0
    assert response.content[0].type == "tool_use"
    assert (meter.requests, meter.rate_limited) == (2, 1)


async def test_an_overloaded_model_is_not_retried(api, make_llm):
    """HTTP 529 raises ModelError after one request: the chain's next model is the cure."""
    api.always(overloaded())
    llm = make_llm()
    meter = Meter()
    with pytest.raises(ModelError, match="HTTP 529"):
        await llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=meter)
    assert len(api.requests) == 1 and meter.requests == 1
    assert llm.breaker(MODEL).consecutive_failures == 1


async def test_server_errors_are_retried_with_backoff_up_to_the_attempt_limit(api, make_llm):
    """HTTP 500 is retried: three attempts, then ModelError naming the status."""
    api.always(server_error(500, retry_after_ms=0))
    with pytest.raises(ModelError, match="HTTP 500"):
        await make_llm(max_attempts=3).create(
            model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=Meter()
        )
    assert len(api.requests) == 3


async def test_the_call_timeout_ends_before_the_deadline(api, make_llm):
    """A model slower than the time left is abandoned at the deadline, not at the 10 s request
    timeout; being cut short by our deadline does not count against the model's breaker."""
    llm = make_llm(timeout=10)
    # The SDK's first request builds its HTTP client synchronously (~0.2 s, blocking the loop).
    await llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=Meter())
    api.always(slow(tool_call({"verdict": "approve", "confidence": 1}), 5.0))
    started = time.monotonic()
    with pytest.raises(ModelError, match="no answer within the 1.[56] s left before the round's deadline"):
        await llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(1.6), budget=unlimited(), meter=Meter())
    took = time.monotonic() - started
    # cut at the 1.6 s deadline, not before; and long before the 5 s answer or the 10 s request
    # timeout (the margin is for a loaded machine, where the loop runs late)
    assert 1.4 <= took < 4.0, f"abandoned after {took:.2f} s"
    assert len(api.requests) == 2  # no retry: none could have ended in time
    assert llm.breaker(MODEL).consecutive_failures == 0  # our deadline, not the model's fault


async def test_no_request_starts_without_a_useful_amount_of_time(api, make_llm):
    """With less than a second to the deadline, NoTimeLeft and no request at all."""
    with pytest.raises(NoTimeLeft):
        await make_llm().create(
            model=MODEL, request=REQUEST, deadline=in_seconds(0.5), budget=unlimited(), meter=Meter()
        )
    assert api.requests == []


async def test_a_retry_after_past_the_deadline_is_not_waited_for(api, make_llm):
    """A 429 asking for 30 s when 10 s are left ends the step at once, saying so."""
    api.reply(rate_limited(retry_after=30))
    started = time.monotonic()
    with pytest.raises(ModelError, match="retry-after 30 s would pass the deadline"):
        await make_llm().create(
            model=MODEL, request=REQUEST, deadline=in_seconds(10), budget=unlimited(), meter=Meter()
        )
    took = time.monotonic() - started
    assert took < 5, f"gave up after {took:.1f} s: it waited, for the retry-after or the deadline"
    assert len(api.requests) == 1


async def test_the_breaker_opens_after_consecutive_failures_and_a_probe_closes_it(api, make_llm):
    """Two failed calls open the circuit (no request sent); after the reset a probe goes and closes it."""
    llm = make_llm(breaker_failures=2, breaker_reset=0.3)
    api.always(overloaded())
    for _ in range(2):
        with pytest.raises(ModelError):
            await llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=Meter())
    with pytest.raises(CircuitOpen):
        await llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=Meter())
    assert len(api.requests) == 2 and llm.breaker(MODEL).state is BreakerState.OPEN
    await asyncio.sleep(0.3)
    api.always(None)
    await llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=Meter())
    assert llm.breaker(MODEL).state is BreakerState.CLOSED


async def test_rate_limits_do_not_open_the_breaker(api, make_llm):
    """429s are our pace, not the model's health: they never count towards opening the circuit."""
    llm = make_llm(breaker_failures=1, max_attempts=1)
    api.always(rate_limited(retry_after=0))
    with pytest.raises(ModelError, match="429"):
        await llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=Meter())
    assert llm.breaker(MODEL).state is BreakerState.CLOSED


async def test_the_gate_keeps_concurrent_calls_under_the_provider_limit(api, make_llm):
    """60 calls at once against a 1,200 rpm provider: ungated they draw 429s; gated at 1,200 rpm, none."""

    async def burst(llm):
        await asyncio.gather(
            *(
                llm.create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=unlimited(), meter=Meter())
                for _ in range(60)
            ),
            return_exceptions=True,
        )

    api.limit(rpm=1200)  # the provider allows 2 s of burst; the gate uses 1 s
    await burst(make_llm(rpm=1e6, in_flight=100, max_attempts=1))
    assert api.stats()["by_status"].get("429", 0) > 0
    api.reset()
    api.limit(rpm=1200)
    await burst(make_llm(rpm=1200, in_flight=100))
    assert api.stats()["by_status"] == {"200": 60}


async def test_cost_comes_from_the_price_table_and_is_charged_to_budget_and_meter(api, make_llm):
    """The response's usage × the model's prices is the cost on the meter and the budget."""
    spent = usage(input_tokens=1000, output_tokens=100, cache_read=2000, cache_creation=0)
    api.reply(tool_call({"verdict": "approve", "confidence": 1}, name="answer", use=spent))
    budget, meter = RoundBudget(), Meter()
    await make_llm().create(model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=budget, meter=meter)
    tokens = TokenUsage(input_tokens=1000, output_tokens=100, cache_read_input_tokens=2000)
    expected = DEFAULT_PRICES[MODEL].cost(tokens)
    assert meter.tokens == tokens == budget.spent
    assert meter.cost_usd == pytest.approx(expected) == budget.spent_usd
    assert expected == pytest.approx((1000 * 3 + 100 * 15 + 2000 * 0.3) / 1e6)


async def test_a_spent_budget_sends_nothing(api, make_llm):
    """When the estimated cost no longer fits the round budget, BudgetExhausted and no request."""
    with pytest.raises(BudgetExhausted, match="round budget"):
        await make_llm().create(
            model=MODEL, request=REQUEST, deadline=in_seconds(20), budget=RoundBudget(max_usd=0.000001), meter=Meter()
        )
    assert api.requests == []


def test_every_agent_in_a_process_shares_one_client(make_settings):
    """shared_client gives the same client (and so the same gates and breakers) for the same settings."""
    settings = make_settings(anthropic_api_key="sk-a", llm_rpm=100)
    first = shared_client(settings)
    assert shared_client(make_settings(anthropic_api_key="sk-a", llm_rpm=100)) is first
    assert shared_client(make_settings(anthropic_api_key="sk-a", llm_rpm=50)) is not first
    assert first.api.max_retries == 0  # our retry policy, not the SDK's
