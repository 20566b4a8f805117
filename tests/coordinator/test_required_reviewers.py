"""coordinator/service.py `reviewers_for`: which reviewers a round expects. Required ones come
from policy configuration, never from who happens to be live; discovery may only add."""

from __future__ import annotations

from bus.directory import AgentDirectory
from bus.ops.settings import MeshSettings
from contracts.cards import AgentCard
from coordinator.service import Coordinator


def card(name: str, *skills: str) -> AgentCard:
    return AgentCard.model_validate(
        {
            "name": name,
            "description": name,
            "version": "1",
            "supportedInterfaces": [
                {"url": "http://127.0.0.1:1", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
            ],
            "capabilities": {},
            "defaultInputModes": ["application/json"],
            "defaultOutputModes": ["application/json"],
            "skills": [{"id": s, "name": s, "description": s, "tags": ["review", "release.proposed"]} for s in skills],
        }
    )


def coordinator(directory: AgentDirectory | None = None, **settings) -> Coordinator:
    c = Coordinator(settings=MeshSettings(**settings), agent=None)  # the agent is only used to connect
    c.directory = directory
    return c


def directory(*cards: AgentCard, synced: bool = True) -> AgentDirectory:
    d = AgentDirectory(MeshSettings())
    d.cards = {c.name: c for c in cards}
    if synced:
        d.ready.set()
    return d


def test_security_and_compliance_are_required_by_default_with_nobody_live():
    """No registry at all: the round still expects security and compliance."""
    expected, required = coordinator().reviewers_for("release.proposed")
    assert expected == required == ["compliance", "security"]


def test_a_directory_that_has_not_synced_is_unknown_not_empty():
    """Before the view has loaded (or while NATS reconnects) the required reviewers are
    expected by their default names, and nothing is added from the stale view."""
    stale = directory(card("security-v2", "review.security"), card("perf", "review.performance"), synced=False)
    expected, required = coordinator(stale).reviewers_for("release.proposed")
    assert expected == required == ["compliance", "security"]


def test_a_card_offering_a_required_skill_never_makes_its_agent_required():
    """Anyone who can write a card could otherwise make themselves a required voter: a live
    agent offering `review.security` under another name is only an optional reviewer."""
    view = directory(card("sec", "review.security"), card("compliance", "review.compliance"))
    view.instances = {}  # nothing live: the card alone
    expected, required = coordinator(view).reviewers_for("release.proposed")
    assert required == ["compliance", "security"] and "sec" not in expected


def test_exclusion_removes_discovered_and_pinned_reviewers_but_never_a_required_one():
    """MESH_EXCLUDE_REVIEWERS cannot take security or compliance out of a round."""
    c = coordinator(reviewers=["docs"], exclude_reviewers=["security", "docs"])
    expected, required = c.reviewers_for("release.proposed")
    assert expected == required == ["compliance", "security"]


def test_required_skills_and_fallbacks_are_configuration():
    """MESH_REQUIRED_SKILLS replaces the default set; security's built-in fallback is block and
    MESH_FALLBACKS overrides it per reviewer."""
    settings = MeshSettings(required_skills="review.security", fallbacks="compliance=approve_with_warning")
    assert coordinator(required_skills="review.security").reviewers_for("release.proposed")[1] == ["security"]
    assert settings.fallback_for("security") == "block"
    assert settings.fallback_for("compliance") == "approve_with_warning"
    assert MeshSettings(fallbacks="security=escalate").fallback_for("security") == "escalate"
    assert MeshSettings().fallback_for("docs") == "escalate"
