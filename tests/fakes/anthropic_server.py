"""The fake Anthropic Messages API, for tests: it lives in `services.llm.fake` because
`mesh bench llm` runs against it too. Import it from here in tests.

    with FakeAnthropic() as api:
        api.reply(tool_call({"verdict": "approve", ...}), server_error(500))
        client = anthropic.AsyncAnthropic(api_key="test", base_url=api.url)
"""

from services.llm.fake import (
    FakeAnthropic,
    Profile,
    Recorded,
    Reply,
    overloaded,
    rate_limited,
    refusal,
    server_error,
    slow,
    text_only,
    tool_call,
    usage,
)

DEFAULT_MODEL = "claude-sonnet-4-6"
APPROVE = {"verdict": "approve", "confidence": 0.9, "rationale": "Nothing blocks this release.", "findings": []}

__all__ = [
    "APPROVE",
    "DEFAULT_MODEL",
    "FakeAnthropic",
    "Profile",
    "Recorded",
    "Reply",
    "overloaded",
    "rate_limited",
    "refusal",
    "server_error",
    "slow",
    "text_only",
    "tool_call",
    "usage",
]
