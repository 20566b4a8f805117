"""A fake Anthropic API on a real socket, and LLM clients (the real SDK) pointed at it, closed after."""

import anthropic
import pytest

from services.llm.client import LLMClient
from services.llm.gate import Gates, Limits, limits_resolver
from services.llm.pricing import price_table
from services.llm.retry import RetryPolicy
from tests.fakes.anthropic_server import FakeAnthropic


@pytest.fixture
def api():
    with FakeAnthropic(seed=5) as server:
        yield server


@pytest.fixture
async def llm(api):
    """An LLMClient on the fake, with quick retries."""
    client = LLMClient(
        api=anthropic.AsyncAnthropic(api_key="sk-test", base_url=api.url, max_retries=0),
        prices=price_table(),
        gates=Gates(limits_resolver(Limits(32, 1e6, 1e9), {})),
        retry=RetryPolicy(max_attempts=2, initial_seconds=0.01, max_seconds=0.05),
        request_timeout=10,
    )
    yield client
    await client.close()
