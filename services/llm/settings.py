"""The LLM layer's settings: the Anthropic key and endpoint, the model, and every `MESH_LLM_*`
knob of the client (chains, limits, retries, breaker, tiering, prices, budgets, caching).

The Anthropic key and base URL keep the SDK's own names (`ANTHROPIC_API_KEY`,
`ANTHROPIC_BASE_URL`) so existing setups just work; `MESH_ANTHROPIC_*` work too.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator

from bus.settings import BusSettings
from services.llm.chain import OFFLINE, parse_chain, parse_chains
from services.llm.config import check_setting


class LLMSettings(BusSettings):
    """The bus's settings plus what the LLM client and a model-backed brain read."""

    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_API_KEY", "MESH_ANTHROPIC_API_KEY"),
        description="Use Anthropic's API when set; the offline reviewer otherwise.",
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL", "MESH_ANTHROPIC_BASE_URL")
    )
    model: str = Field(default="claude-sonnet-4-6", description="Model id reviewers ask first.")
    max_tokens: int = Field(default=2048, ge=256, description="Output token cap per model call.")
    llm_timeout_seconds: float = Field(default=20.0, gt=0, description="Timeout of one model call.")

    # Chains, limits and prices are checked by services.llm.config at load time; errors name the variable.
    llm_chain: str = Field(
        default="",
        description="Fallback chain of every agent, ending in `offline`, e.g. "
        "`claude-sonnet-4-6,claude-haiku-4-5,offline`; empty means `<MESH_MODEL>,offline`.",
    )
    llm_chains: str = Field(
        default="",
        description='Per-agent chains: JSON `{"compliance": ["claude-haiku-4-5", "offline"]}` or '
        "`security=claude-sonnet-4-6>claude-haiku-4-5>offline,compliance=claude-haiku-4-5>offline`.",
    )
    llm_max_in_flight: int = Field(default=8, ge=1, description="Model calls in flight per model in this process.")
    llm_rpm: float = Field(
        default=50, gt=0, description="Requests per minute per model for this process: its share of the key's limit."
    )
    llm_tpm: float = Field(
        default=50_000, gt=0, description="Tokens per minute per model for this process (cache reads not counted)."
    )
    llm_limits: str = Field(
        default="",
        description='Per-model limits: JSON `{"claude-haiku-4-5": {"rpm": 100, "tpm": 80000, "in_flight": 16}}` '
        "or `claude-haiku-4-5=rpm:100/tpm:80000/in_flight:16`.",
    )
    llm_max_attempts: int = Field(
        default=3, ge=1, le=10, description="Requests per model for errors that time cures (429, 5xx, timeouts)."
    )
    llm_backoff_seconds: float = Field(default=0.5, gt=0, description="First retry backoff; `retry-after` wins.")
    llm_backoff_max_seconds: float = Field(default=8.0, gt=0, description="Longest retry backoff.")
    llm_breaker_failures: int = Field(default=5, ge=1, description="Failed calls in a row that open a model's circuit.")
    llm_breaker_reset_seconds: float = Field(default=30.0, gt=0, description="Open circuit's wait before a probe.")
    llm_deadline_margin_seconds: float = Field(
        default=2.0, ge=0, description="Model calls end this long before the round's deadline."
    )
    llm_tier_model: str = Field(
        default="", description="Cheap model asked first for small, low-risk releases; empty: no tiering."
    )
    llm_tier_max_chars: int = Field(default=6000, ge=0, description="Largest prompt the cheap model is asked first.")
    llm_tier_min_confidence: float = Field(
        default=0.8, ge=0, le=1, description="Escalate the cheap model's answer below this confidence."
    )
    llm_prices: str = Field(
        default="",
        description="USD per million tokens over the built-in table: JSON, or "
        "`model=input/output/cache_read/cache_write`, comma-separated.",
    )
    llm_round_budget_usd: float | None = Field(
        default=None, gt=0, description="Most one reviewer spends on one release; then its chain goes `offline`."
    )
    llm_round_budget_tokens: int | None = Field(default=None, gt=0, description="The same budget, in tokens.")
    llm_prompt_caching: bool = Field(default=True, description="Mark system prompt and tools with cache_control.")

    @field_validator("llm_chain", "llm_chains", "llm_limits", "llm_prices")
    @classmethod
    def _check_llm_value(cls, value: str, info: ValidationInfo) -> str:
        check_setting(info.field_name, value)
        return value

    def chain_for(self, agent: str) -> list[str]:
        """`agent`'s chain: its entry in MESH_LLM_CHAINS, else MESH_LLM_CHAIN, else `<MESH_MODEL>,offline`."""
        chains = parse_chains(self.llm_chains)
        if agent in chains:
            return chains[agent]
        if self.llm_chain.strip():
            return parse_chain(self.llm_chain)
        return [self.model, OFFLINE]
