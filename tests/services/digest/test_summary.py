"""services/digest/summary.py: a model writes the digest's summary through a forced tool call,
asked through the real SDK and the one LLM client, against the fake Anthropic API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.digest.figures import Window, digest_of
from services.digest.settings import DigestSettings
from services.digest.summary import WRITE_SUMMARY, make_writer
from tests.fakes.anthropic_server import server_error, tool_call, usage
from tests.services.digest.samples import outcome, review

MODEL = "claude-haiku-4-5"
DIGEST = digest_of(
    Window.ending(datetime(2026, 11, 22, 9, tzinfo=UTC), 86400),
    [outcome("rel-<1>", "escalated", review("security", "SEC001"))],
    ["coordinator"],
    [],
)


@pytest.fixture
def writer(llm, api):
    settings = DigestSettings(
        _env_file=None, anthropic_api_key="sk-test", anthropic_base_url=api.url, llm_chains=f"digest={MODEL}>offline"
    )
    return make_writer(settings, llm=llm)


async def test_the_model_writes_a_summary_from_the_figures_and_its_cost_is_counted(writer, api):
    """The figures go as data in <digest> tags (no `<` of theirs can close them); the summary, the
    model and what it cost come back, secrets scrubbed."""
    api.reply(
        tool_call(
            {"summary": "One release waits for a human. Key AKIAABCDEFGHIJKLMNOP leaked."},
            name=WRITE_SUMMARY,
            use=usage(input_tokens=400, output_tokens=60, cache_read=0, cache_creation=0),
        )
    )

    summary = await writer.write(DIGEST)

    (request,) = api.requests
    prompt = request.body["messages"][0]["content"]
    assert request.body["tool_choice"] == {"type": "tool", "name": WRITE_SUMMARY}
    assert "<digest>" in prompt and "rel-\\u003c1>" in prompt and '"escalated_total": 1' in prompt
    assert summary.model == MODEL and summary.text.startswith("One release waits for a human.")
    assert "AKIAABCDEFGHIJKLMNOP" not in summary.text
    assert summary.tokens.input_tokens == 400 and summary.tokens.output_tokens == 60 and summary.cost_usd > 0


async def test_a_model_that_does_not_answer_means_no_summary(writer, api):
    """The model keeps failing: None, and the digest goes out with its figures only."""
    api.always(server_error(503))

    assert await writer.write(DIGEST) is None


def test_offline_there_is_no_writer():
    """No key, or a chain of just `offline`: no model is asked."""
    assert make_writer(DigestSettings(_env_file=None, anthropic_api_key=None)) is None
    assert make_writer(DigestSettings(_env_file=None, anthropic_api_key="sk-x", llm_chain="offline")) is None
