"""bus/asyncapi.py: the mesh's AsyncAPI 3.0 document, as `mesh asyncapi` writes it, checked with
the official parser (@asyncapi/parser) and against what the services declare."""

from __future__ import annotations

import json

import pytest

from bus.asyncapi import asyncapi_document, channels
from bus.ops.settings import MeshSettings
from contracts.releases import ReleaseProposed
from services.index import mesh_agents
from tests.bus.ops.test_cli import mesh
from tests.e2e.support import subject_matches


@pytest.fixture(scope="module")
def settings() -> MeshSettings:
    return MeshSettings(namespace="acme", nats_url="nats://user:pw-not-for-docs@nats.internal:4222")


@pytest.fixture(scope="module")
def document(settings, tmp_path_factory) -> dict:
    """What `mesh asyncapi --out FILE` writes for these settings."""
    out = tmp_path_factory.mktemp("asyncapi") / "asyncapi.json"
    result = mesh("asyncapi", "--out", str(out), MESH_NAMESPACE=settings.namespace, MESH_NATS_URL=settings.nats_url)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def test_the_official_parser_finds_no_error_and_no_warning(document, node_tools, tmp_path):
    """@asyncapi/parser validates the document: AsyncAPI 3.0.0, every reference resolved, every
    operation's messages those of its channel; not even a warning."""
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document))

    parsed = node_tools.run("asyncapi.mjs", str(path))

    assert parsed["errors"] == [] and parsed["warnings"] == [], parsed
    summary = parsed["summary"]
    assert summary["version"] == "3.0.0"
    assert {c["address"] for c in summary["channels"]} >= {
        "acme.events.release.proposed",
        "acme.reviews.release.{reviewer}",
        "acme.outcomes.release.{release}.{digest}",
        "acme.deadletter.{service}",
    }
    proposals = next(m for m in summary["messages"] if m["id"] == "releaseProposed")
    assert "Nats-Msg-Id" in proposals["headers"] and proposals["payload"] == "ReleaseProposed"


def test_stdout_and_file_are_the_same_document(document, settings):
    """Without --out the document goes to stdout, and nothing else does."""
    result = mesh("asyncapi", MESH_NAMESPACE=settings.namespace, MESH_NATS_URL=settings.nats_url)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == document


def test_every_declared_subject_has_its_publishers_and_consumers(document, settings):
    """Each consumer of each service is a receive operation on the channel of its subject, with
    its durable as the NATS queue; each subject a service publishes on is a send operation; every
    channel's message carries its contract's schema."""
    operations = document["operations"]
    address = {cid: c["address"] for cid, c in document["channels"].items()}

    def channel_of(op: dict) -> str:
        return op["channel"]["$ref"].rsplit("/", 1)[1]

    for agent in mesh_agents(settings):
        for sub in [*agent.subscriptions, *agent.exhausted]:
            mine = [
                op
                for op in operations.values()
                if op["action"] == "receive" and op.get("bindings", {}).get("nats", {}).get("queue") == sub.spec.durable
            ]
            assert mine, f"{agent.name} reads {sub.subject} through {sub.spec.durable}: no operation"
            for op in mine:
                assert op["tags"] == [{"name": agent.name}]
                assert _overlaps(sub.subject, address[channel_of(op)]), (sub.subject, address[channel_of(op)])
        for subject, _ in agent.produces:
            sends = [op for key, op in operations.items() if key.startswith(f"{agent.name}.send.")]
            assert any(subject_matches(_pattern(address[channel_of(op)]), subject) for op in sends), subject

    assert operations["outside.send.releaseProposed"]["action"] == "send"
    assert operations["coordinator-reviews.receive.reviewSubmitted"]["bindings"]["nats"]["queue"] == (
        "coordinator-reviews"
    )
    assert {op["tags"][0]["name"] for op in operations.values() if channel_of(op) == "reviewSubmitted"} == {
        "security",
        "compliance",
        "coordinator",
        "steward",  # a daemon agent: applies reviews to its state
    }
    schema = document["components"]["schemas"]["ReleaseProposed"]
    assert {"release_id", "service", "version"} <= set(schema["required"])
    assert document["components"]["messages"]["reviewSubmitted"]["headers"]["required"] == ["Nats-Msg-Id"]


def test_a_daemon_agent_reads_what_it_applies_on_its_card_and_in_the_document(document, settings):
    """A daemon agent has no durable consumer, yet every stream subject it applies to its state
    is a receive operation of its own in the document and a `consumes` entry on its card."""
    operations = document["operations"]
    address = {cid: c["address"] for cid, c in document["channels"].items()}
    daemons = [agent for agent in mesh_agents(settings) if agent.daemon is not None]
    assert [agent.name for agent in daemons] == ["steward"]
    for agent in daemons:
        card = agent.card.to_wire()
        consumes = {entry["subject"] for entry in card["capabilities"]["extensions"][0]["params"]["consumes"]}
        for applier in agent.daemon.appliers:
            assert applier.subject in consumes, applier.subject
            mine = [
                op
                for key, op in operations.items()
                if key.startswith(f"{agent.name}.applies.")
                and _overlaps(applier.subject, address[op["channel"]["$ref"].rsplit("/", 1)[1]])
            ]
            assert mine and all(op["action"] == "receive" for op in mine), applier.subject


def test_servers_are_named_without_credentials(document):
    """The NATS URL's user and password never reach the document."""
    assert document["servers"]["nats"]["host"] == "nats.internal:4222"
    assert "pw-not-for-docs" not in json.dumps(document)


class StrayAgent:
    name = "stray"
    subscriptions: list = []
    exhausted: list = []
    produces = [("acme.somewhere.else", ReleaseProposed)]


def test_a_subject_on_no_channel_is_an_error(settings):
    """A service that publishes where no channel lies makes generation fail, naming the fix,
    rather than leave the subject out of the document."""
    with pytest.raises(ValueError, match=r"stray publishes ReleaseProposed on acme.somewhere.else.*channels\(\)"):
        asyncapi_document([StrayAgent()], settings)


def test_channel_addresses_follow_the_subjects_module(settings):
    """Each address is what contracts/subjects.py builds, its variable tokens as parameters."""
    s = settings.subjects
    by_id = {c.id: c for c in channels(s)}

    assert subject_matches(by_id["reviewSubmitted"].pattern, s.review_submitted("security"))
    assert subject_matches(by_id["roundDecided"].pattern, s.round_decided("rel-42", "abc"))
    assert subject_matches(by_id["maxDeliveries"].pattern, s.max_deliveries_advisory("ACME_EVENTS", "security"))
    assert set(by_id["roundDecided"].parameters) == {"release", "digest"}


def _pattern(address: str) -> str:
    return ".".join("*" if t.startswith("{") else t for t in address.split("."))


def _overlaps(filter_subject: str, address: str) -> bool:
    """A consumer's filter and a channel's address share at least one subject."""
    concrete = ".".join("x" if t.startswith("{") else t for t in address.split("."))
    return subject_matches(_pattern(address), filter_subject) or subject_matches(filter_subject, concrete)
