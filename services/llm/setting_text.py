"""The two ways an LLM setting that maps names to values may be written: JSON, or compact
`name=…,name=…`. The parsers in chain.py, gate.py and pricing.py read either through these."""

from __future__ import annotations

import json
from collections.abc import Iterator

from services.llm.errors import LLMConfigError


def json_setting(value: str, field_name: str) -> object | None:
    """`value` parsed, when it is written as JSON (it starts with `{` or `[`); None otherwise."""
    if not value.startswith(("{", "[")):
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise LLMConfigError(f"{field_name} is not valid JSON ({exc.msg} at {exc.pos}).") from None


def compact_entries(value: str) -> Iterator[str]:
    """The comma-separated entries of the compact form, blanks skipped."""
    return filter(None, (part.strip() for part in value.split(",")))
