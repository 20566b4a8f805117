"""services/watch/advisor.py: the model proposes the next check through `schedule_next_check`,
asked through the real SDK and the one LLM client, against the fake Anthropic API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.alerts import AlertKind, AlertSeverity, MeshAlert
from services.watch.advisor import SCHEDULE_NEXT_CHECK, make_advisor
from services.watch.cadence import Bounds, Proposal
from services.watch.checks import Observation
from services.watch.settings import WatchSettings
from tests.fakes.anthropic_server import server_error, tool_call

MODEL = "claude-sonnet-4-6"
BOUNDS = Bounds(min=timedelta(seconds=30), max=timedelta(hours=6))
SEEN = Observation(at=datetime(2026, 11, 22, tzinfo=UTC), window_seconds=3600, reviewers_down=["security"])
ALERTS = [MeshAlert(kind=AlertKind.REVIEWER_DOWN, severity=AlertSeverity.CRITICAL, detail="security has none")]
RULE = Proposal(timedelta(seconds=30), "critical: reviewer_down")


@pytest.fixture
def advisor(llm, api):
    settings = WatchSettings(
        _env_file=None, anthropic_api_key="sk-test", anthropic_base_url=api.url, llm_chain=f"{MODEL},offline"
    )
    return make_advisor(settings, llm=llm)


async def propose(advisor) -> Proposal | None:
    return await advisor.propose(SEEN, ALERTS, rule=RULE, bounds=BOUNDS, calm_for=timedelta(0))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(1, timedelta(seconds=1)), (10 * 24 * 3600, timedelta(days=10))],
    ids=["one-second", "ten-days"],
)
async def test_the_models_proposal_is_returned_as_it_is(advisor, api, seconds, expected):
    """A model proposing 1 s or 10 days gets exactly that back (clamping is the runtime's), with
    its reason and its model id."""
    api.reply(tool_call({"delay_seconds": seconds, "reason": "security is down"}, name=SCHEDULE_NEXT_CHECK))

    proposal = await propose(advisor)

    assert proposal == Proposal(expected, "security is down", by=MODEL)


async def test_the_model_sees_the_findings_the_rule_and_the_bounds_as_data_and_must_call_the_tool(advisor, api):
    """One request: the tool forced, the check as JSON in <check> tags with the bounds and the rule's answer."""
    api.reply(tool_call({"delay_seconds": 60, "reason": "r"}, name=SCHEDULE_NEXT_CHECK))

    await propose(advisor)

    (request,) = api.requests
    body = request.body
    assert body["tool_choice"] == {"type": "tool", "name": SCHEDULE_NEXT_CHECK}
    assert body["tools"][0]["input_schema"]["required"] == ["delay_seconds", "reason"]
    prompt = body["messages"][0]["content"]
    assert "<check>" in prompt and '"reviewers_without_live_instance": [\n  "security"' in prompt
    assert '"min_interval_seconds": 30' in prompt and '"max_interval_seconds": 21600' in prompt
    assert '"rule_proposes_seconds": 30' in prompt


async def test_no_usable_answer_leaves_the_decision_to_the_rule(advisor, api):
    """An invalid delay (0) twice, or a model that keeps failing: None, so the rule decides."""
    api.reply(
        tool_call({"delay_seconds": 0, "reason": "now"}, name=SCHEDULE_NEXT_CHECK),
        tool_call({"delay_seconds": -5, "reason": "now"}, name=SCHEDULE_NEXT_CHECK),
    )
    invalid = await propose(advisor)
    api.always(server_error(500))
    failing = await propose(advisor)

    assert invalid is None and failing is None


def test_offline_there_is_no_advisor():
    """Without a key, or with a chain of just `offline`, the rule alone decides."""
    assert make_advisor(WatchSettings(_env_file=None, anthropic_api_key=None)) is None
    assert make_advisor(WatchSettings(_env_file=None, anthropic_api_key="sk-x", llm_chain="offline")) is None
