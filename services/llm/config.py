"""The LLM layer's reading of `MeshSettings`: checks for the compact settings, and each agent's chain.

`bus.settings` calls `check_setting` while loading, so a bad `MESH_LLM_*` value fails at startup
with a message naming the variable; the services then read the parsed values from here.
"""

from __future__ import annotations

from typing import Any

from services.llm.chain import OFFLINE, parse_chain, parse_chains
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


def chain_for(settings: Any, agent: str) -> list[str]:
    """`agent`'s chain: its entry in MESH_LLM_CHAINS, else MESH_LLM_CHAIN, else `<MESH_MODEL>,offline`."""
    chains = parse_chains(settings.llm_chains)
    if agent in chains:
        return chains[agent]
    if settings.llm_chain.strip():
        return parse_chain(settings.llm_chain)
    return [settings.model, OFFLINE]
