"""A protocol-faithful fake of Anthropic's Messages API, for tests and `mesh bench llm`.

See `server.py` for how to run and steer it, `replies.py` for scripted answers and `model.py`
for the answers it builds from a request (tool input from the tool's schema, cache-aware usage,
a provider rate limit).
"""

from services.llm.fake.model import Profile
from services.llm.fake.replies import (
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
from services.llm.fake.server import FakeAnthropic, Recorded

__all__ = [
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
