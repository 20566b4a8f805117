"""bus/permissions.py: an identity's allow lists come from what its agent declares, and nothing
else — a new agent gets the right permissions by declaring its handlers."""

from __future__ import annotations

from bus.permissions import operator_permissions, publisher_permissions
from bus.runtime import Agent
from bus.settings import BusSettings
from contracts.releases import ReleaseProposed
from contracts.reviews import ReviewSubmitted


def privacy_agent(settings: BusSettings) -> Agent:
    """A reviewer no index knows: it only declares a handler and what it publishes."""
    s = settings.subjects
    agent = Agent("privacy", settings=settings)
    agent.publishes(s.review_submitted("privacy"), ReviewSubmitted)

    @agent.consumes(stream=s.events_stream, subject=s.release_proposed, model=ReleaseProposed)
    async def review(event, delivery) -> None:
        return None

    return agent


def test_a_new_agent_may_pull_its_own_consumer_and_publish_what_it_declared():
    """Declaring a handler gives pull, ack and info on that durable only; declaring a subject
    gives that subject only; its inbox is its own."""
    settings = BusSettings(namespace="mesh")
    permissions = privacy_agent(settings).permissions
    publish = set(permissions.publish)
    assert "$JS.API.CONSUMER.MSG.NEXT.MESH_EVENTS.privacy" in publish
    assert "$JS.ACK.MESH_EVENTS.privacy.>" in publish
    assert "mesh.reviews.release.privacy" in publish
    assert "_INBOX.privacy.>" in permissions.subscribe
    assert not any(rule.startswith(("mesh.outcomes", "$JS.EVENT", "$JS.API.STREAM.DELETE")) for rule in publish)
    assert not any("security" in rule or "compliance" in rule for rule in publish)
    assert not any(rule in publish for rule in ("mesh.reviews.>", "mesh.>", ">", "$JS.API.>"))


def test_a_bucket_is_written_only_when_declared_and_then_only_its_keys():
    """Every agent writes its own card and heartbeat keys, never another's; a declared bucket
    adds exactly the declared keys."""
    settings = BusSettings(namespace="mesh")
    agent = privacy_agent(settings)
    before = set(agent.permissions.publish)
    assert {"$KV.mesh_agents.privacy", "$KV.mesh_instances.privacy.>"} <= before
    assert not any(rule.startswith("$KV.mesh_rounds") for rule in before)
    agent.writes_bucket("mesh_rounds", keys=("privacy.*",))
    after = set(agent.permissions.publish)
    assert "$KV.mesh_rounds.privacy.*" in after
    assert "$KV.mesh_rounds.>" not in after


def test_the_namespace_is_part_of_every_rule():
    """Two meshes on one server cannot reach each other's subjects."""
    permissions = privacy_agent(BusSettings(namespace="blue")).permissions
    assert "blue.reviews.release.privacy" in permissions.publish
    assert not any(rule.startswith("mesh.") for rule in permissions.publish)


def test_the_operator_may_not_publish_outcomes_or_delete_streams_and_a_publisher_only_its_events():
    """The operator's list denies stream deletion and has no outcome subject; a publisher may
    publish exactly its event types and read outcomes."""
    settings = BusSettings(namespace="mesh")
    operator = operator_permissions(settings)
    assert not any(rule.startswith("mesh.outcomes") for rule in operator.publish)
    assert "$JS.API.STREAM.DELETE.>" in operator.deny_publish
    publisher = publisher_permissions(settings, "ci", ["release.proposed"])
    assert [rule for rule in publisher.publish if rule.startswith("mesh.")] == ["mesh.events.release.proposed"]
    assert set(publisher.subscribe) == {"_INBOX.ci.>", "mesh.outcomes.>"}


def test_nothing_allowed_is_written_as_a_deny_because_an_empty_allow_list_means_everything():
    """nats-server reads `allow: []` as no restriction; an identity with nothing to publish
    must get `deny: [">"]` instead."""
    from bus.permissions import Permissions

    config = Permissions(publish=(), subscribe=("_INBOX.x.>",)).as_config()
    assert config["publish"] == {"deny": [">"]}
