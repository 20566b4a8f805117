"""The grammars of the LLM layer's compact settings (chains, limits, prices).

`LLMSettings` (services/llm/settings.py) calls `check_setting` while loading, so a bad
`MESH_LLM_*` value fails at startup with a message naming the variable.
"""

from __future__ import annotations

from services.llm.chain import parse_chain, parse_chains
from services.llm.gate import parse_limits
from services.llm.pricing import parse_prices

_CHECKS = {
    "llm_chain": lambda value: parse_chain(value) if value.strip() else None,
    "llm_chains": parse_chains,
    "llm_limits": parse_limits,
    "llm_prices": parse_prices,
}


def check_setting(name: str, value: str) -> None:
    """Raise LLMConfigError (a ValueError) when `value` is not usable for setting `name`."""
    _CHECKS[name](value)
