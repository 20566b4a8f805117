"""What tokens cost: a price table per model, in USD per million tokens, from configuration.

`MESH_LLM_PRICES` overrides or extends `DEFAULT_PRICES`, as JSON
(`{"claude-sonnet-4-6": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}}`) or
compactly as `model=input/output[/cache_read/cache_write]`, comma-separated (cache prices
default to 0.1x and 1.25x input). Check the defaults
against Anthropic's price list before trusting a bill computed from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.reviews import TokenUsage
from services.llm.errors import LLMConfigError
from services.llm.setting_text import compact_entries, json_setting

_FIELD = "MESH_LLM_PRICES"


@dataclass(frozen=True)
class Price:
    """USD per million tokens: plain input, output, cache reads and cache writes (5-minute TTL)."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, tokens: TokenUsage) -> float:
        """USD for `tokens` (`input_tokens` excludes cached tokens, as the API reports it)."""
        micro = (
            tokens.input_tokens * self.input
            + tokens.output_tokens * self.output
            + tokens.cache_read_input_tokens * self.cache_read
            + tokens.cache_creation_input_tokens * self.cache_write
        )
        return micro / 1_000_000

    def cost_uncached(self, tokens: TokenUsage) -> float:
        """What `tokens` would have cost with no prompt caching: every input token at the input price."""
        plain = tokens.input_tokens + tokens.cache_read_input_tokens + tokens.cache_creation_input_tokens
        return (plain * self.input + tokens.output_tokens * self.output) / 1_000_000


def _cached(input_price: float, output_price: float) -> Price:
    # Anthropic's rule: cache reads cost 0.1x input, 5-minute cache writes 1.25x input.
    return Price(input_price, output_price, round(input_price * 0.1, 6), round(input_price * 1.25, 6))


DEFAULT_PRICES: dict[str, Price] = {
    "claude-haiku-4-5": _cached(1.0, 5.0),
    "claude-sonnet-4-5": _cached(3.0, 15.0),
    "claude-sonnet-4-6": _cached(3.0, 15.0),
    "claude-opus-4-5": _cached(5.0, 25.0),
    "claude-opus-4-6": _cached(5.0, 25.0),
    "claude-opus-4-8": _cached(5.0, 25.0),
}


@dataclass(frozen=True)
class PriceTable:
    """Prices by model id; a dated id (`claude-sonnet-4-6-20261101`) uses its base id's price."""

    prices: dict[str, Price]

    def price(self, model: str) -> Price:
        if model in self.prices:
            return self.prices[model]
        base = max((known for known in self.prices if model.startswith(known + "-")), key=len, default=None)
        if base is None:
            raise LLMConfigError(f"{_FIELD} has no price for model {model!r}; add it, e.g. {model}=3/15/0.3/3.75.")
        return self.prices[base]

    def cost(self, model: str, tokens: TokenUsage) -> float:
        return self.price(model).cost(tokens)

    def require(self, models: list[str], *, used_in: str) -> None:
        """Fail at startup, not at the first bill, when a configured model has no price."""
        for model in models:
            try:
                self.price(model)
            except LLMConfigError as exc:
                raise LLMConfigError(f"{exc} (the model is used in {used_in})") from None


def parse_prices(value: str) -> dict[str, Price]:
    """The overrides in `MESH_LLM_PRICES` (JSON or compact); raises LLMConfigError naming the entry."""
    value = value.strip()
    if not value:
        return {}
    raw = json_setting(value, _FIELD)
    if raw is not None:
        if not isinstance(raw, dict):
            raise LLMConfigError(f"{_FIELD} must be a JSON object of model -> prices.")
        return {model: _from_mapping(model, prices) for model, prices in raw.items()}
    table: dict[str, Price] = {}
    for item in compact_entries(value):
        model, sep, numbers = item.partition("=")
        parts = numbers.split("/")
        if not sep or not model.strip() or len(parts) not in (2, 4):
            raise LLMConfigError(
                f"{_FIELD} entry {item!r} should look like model=input/output[/cache_read/cache_write]."
            )
        names = ("input", "output", "cache_read", "cache_write")
        table[model.strip()] = _from_mapping(model.strip(), dict(zip(names[: len(parts)], parts, strict=True)))
    return table


def _from_mapping(model: str, raw: object) -> Price:
    keys = ("input", "output", "cache_read", "cache_write")
    if not isinstance(raw, dict) or set(raw) - set(keys) or not {"input", "output"} <= set(raw):
        raise LLMConfigError(f"{_FIELD} for {model!r} needs input and output (and may give cache_read, cache_write).")
    try:
        numbers = {key: float(raw[key]) for key in keys if key in raw}
    except (TypeError, ValueError):
        raise LLMConfigError(f"{_FIELD} for {model!r}: prices are numbers (USD per million tokens).") from None
    if any(number < 0 for number in numbers.values()):
        raise LLMConfigError(f"{_FIELD} for {model!r}: prices cannot be negative.")
    base = _cached(numbers["input"], numbers["output"])
    return Price(
        numbers["input"],
        numbers["output"],
        numbers.get("cache_read", base.cache_read),
        numbers.get("cache_write", base.cache_write),
    )


def price_table(overrides: str = "") -> PriceTable:
    """The defaults with `MESH_LLM_PRICES` laid over them."""
    return PriceTable({**DEFAULT_PRICES, **parse_prices(overrides)})
