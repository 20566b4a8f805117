"""The fake Anthropic Messages API, for tests: it lives in `services.llm.fake` because
`mesh bench llm` runs against it too. Import it from here in tests.

    with FakeAnthropic() as api:
        api.reply(tool_call({"verdict": "approve", ...}), server_error(500))
        client = anthropic.AsyncAnthropic(api_key="test", base_url=api.url)
"""

from services.llm.fake import *  # noqa: F403 - this module is the fake, plus two test constants
from services.llm.fake import __all__ as _FAKE

DEFAULT_MODEL = "claude-sonnet-4-6"
APPROVE = {"verdict": "approve", "confidence": 0.9, "rationale": "Nothing blocks this release.", "findings": []}

__all__ = ["APPROVE", "DEFAULT_MODEL", *_FAKE]
