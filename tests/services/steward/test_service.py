"""services/steward/service.py: what the steward declares (appliers, publications, permissions, card)
and how apply.py's messages become the runtime's effects. No broker."""

from __future__ import annotations

from bus.stateful import Effect
from contracts.subjects import Subjects
from services.steward.apply import apply_outcome, apply_proposal
from services.steward.service import SKILL, build, effects
from services.steward.settings import StewardSettings
from services.steward.state import StewardState
from tests.services.steward.events import at, outcome, proposal


def test_it_applies_proposals_reviews_and_outcomes_from_their_streams():
    """Three appliers, one per stream; its state starts empty."""
    agent = build(StewardSettings(namespace="acme"))
    s = agent.settings.subjects
    assert [(a.stream, a.subject) for a in agent.daemon.appliers] == [
        (s.events_stream, s.release_proposed),
        (s.reviews_stream, s.reviews),
        (s.outcomes_stream, s.rounds_decided),
    ]
    assert agent.daemon.current == StewardState()


def test_its_identity_may_publish_its_history_and_answer_history_requests_only():
    """It publishes on the history subjects and listens for requests; it may not publish events or outcomes."""
    permissions = build(StewardSettings(namespace="acme")).permissions
    assert {"acme.history.decided.*", "acme.history.risk.*"} <= set(permissions.publish)
    assert "acme.steward.history.*" in permissions.subscribe
    assert "$JS.API.DIRECT.GET.ACME_HISTORY" in permissions.publish
    assert not {"acme.outcomes.>", "acme.events.>", "acme.events.release.proposed"} & set(permissions.publish)


def test_its_card_has_one_skill_and_is_never_taken_for_a_reviewer():
    """The coordinator asks agents whose skills are tagged `review`: the steward's never is."""
    card = build(StewardSettings(namespace="acme")).card
    assert [s.id for s in card.skills] == [SKILL.id]
    assert all("review" not in s.tags for s in card.skills)


def test_effects_go_to_their_services_history_subjects_with_the_events_ids():
    """A decision on `history.decided.<service>`, a risk change on `history.risk.<service>`; the id is the event's."""
    state = StewardState()
    apply_proposal(state, proposal("rel-1", "payments.api"), at("E", 1))
    found = effects(Subjects("acme"), apply_outcome(state, outcome("rel-1", "blocked"), at("O", 7)))
    assert all(isinstance(e, Effect) for e in found)
    token = Subjects("acme").decision_recorded("payments.api").rsplit(".", 1)[-1]
    assert [(e.subject, e.msg_id) for e in found] == [
        (f"acme.history.decided.{token}", "steward:decided:O:7"),
        (f"acme.history.risk.{token}", "steward:risk:O:7"),
    ]


def test_the_operator_tools_settings_become_the_stewards_own():
    """`mesh run` passes every layer's settings; the steward reads its own from them and the environment."""
    from bus.ops.settings import MeshSettings

    agent = build(MeshSettings(namespace="acme"))
    assert isinstance(agent.settings, StewardSettings) and agent.settings.namespace == "acme"
