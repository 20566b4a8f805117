"""Prices from configuration, cost per call, and the per-round budget."""

import pytest

from contracts.reviews import TokenUsage
from services.llm.budget import RoundBudget
from services.llm.errors import BudgetExhausted, LLMConfigError
from services.llm.pricing import DEFAULT_PRICES, Price, parse_prices, price_table

USAGE = TokenUsage(input_tokens=1000, output_tokens=200, cache_read_input_tokens=3000, cache_creation_input_tokens=500)


def test_cost_counts_each_kind_of_token_at_its_price():
    """input × in + output × out + cache reads × read + cache writes × write, per million tokens."""
    price = Price(input=3, output=15, cache_read=0.3, cache_write=3.75)
    assert price.cost(USAGE) == pytest.approx((1000 * 3 + 200 * 15 + 3000 * 0.3 + 500 * 3.75) / 1e6)
    assert price.cost_uncached(USAGE) == pytest.approx((4500 * 3 + 200 * 15) / 1e6)


def test_defaults_follow_the_cache_multipliers_and_overrides_win():
    """Built-in cache prices are 0.1× and 1.25× input; MESH_LLM_PRICES replaces a model's row."""
    sonnet = DEFAULT_PRICES["claude-sonnet-4-6"]
    assert (sonnet.cache_read, sonnet.cache_write) == (pytest.approx(0.3), pytest.approx(3.75))
    table = price_table("claude-sonnet-4-6=2/10,new-model=1/2/0.05/1.5")
    assert table.price("claude-sonnet-4-6") == Price(2, 10, 0.2, 2.5)
    assert table.price("new-model") == Price(1, 2, 0.05, 1.5)
    assert price_table('{"x": {"input": 1, "output": 4}}').price("x").output == 4


def test_dated_model_ids_use_their_base_price_and_unknown_models_are_refused():
    """`claude-haiku-4-5-20251001` is priced as claude-haiku-4-5; an unpriced model is a config error."""
    table = price_table()
    assert table.price("claude-haiku-4-5-20251001") == DEFAULT_PRICES["claude-haiku-4-5"]
    with pytest.raises(LLMConfigError, match="MESH_LLM_PRICES has no price for model 'gpt-x'.*used in the chain"):
        table.require(["claude-haiku-4-5", "gpt-x"], used_in="the chain")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("m=1", "should look like model=input/output"),
        ("m=a/b", "prices are numbers"),
        ("m=-1/2", "cannot be negative"),
        ('{"m": {"output": 2}}', "needs input and output"),
        ('["m"]', "must be a JSON object"),
    ],
)
def test_bad_price_tables_name_the_setting(value, message):
    """Every malformed MESH_LLM_PRICES value is refused with a message naming it."""
    with pytest.raises(LLMConfigError, match=message) as info:
        parse_prices(value)
    assert "MESH_LLM_PRICES" in str(info.value)


def test_the_budget_refuses_a_call_that_would_overspend_and_counts_everything_spent():
    """Charges add up; a request whose estimate no longer fits raises BudgetExhausted."""
    budget = RoundBudget(max_usd=0.01)
    budget.ensure(usd=0.006, tokens=100)
    budget.charge(USAGE, 0.006)
    with pytest.raises(BudgetExhausted, match="round budget of 0.0100 USD is spent"):
        budget.ensure(usd=0.005, tokens=100)
    budget.ensure(usd=0.004, tokens=10**9)  # USD only: tokens are not limited
    assert budget.spent == USAGE and budget.spent_usd == 0.006


def test_a_token_budget_counts_every_kind_of_token():
    """A token budget counts input, output and cache tokens alike."""
    budget = RoundBudget(max_tokens=5000)
    budget.charge(USAGE, 0.0)  # 4,700 tokens
    with pytest.raises(BudgetExhausted, match="5000 tokens is spent \\(4700 used"):
        budget.ensure(usd=0, tokens=301)
