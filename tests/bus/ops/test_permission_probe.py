"""`mesh provision --check-permissions`: what a credential may do, asked of a real nats-server
that enforces per-user permissions, with nothing stored, pulled, created or deleted on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import nkeys
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from bus.ops.embedded import EmbeddedNats
from bus.ops.permission_probe import Check, probe, standard_checks
from bus.ops.settings import MeshSettings
from bus.provision import provision
from services.index import SERVICES

CLI_PASSWORD = "probe-Pw-7xq"

# name -> permissions; every user may subscribe to its own inbox
USERS = {
    "admin": None,  # no permissions block: everything allowed
    "security": {
        "publish": ["mesh.events.>", "$JS.API.CONSUMER.MSG.NEXT.MESH_EVENTS.security"],
        "subscribe": [],
    },
    # an empty allow list would allow everything: give the reader one harmless subject
    "reader": {"publish": ["mesh.nothing"], "subscribe": ["mesh.events.>"]},
}


def _permissions(name: str, rules: dict | None) -> str:
    if rules is None:
        return ""
    publish = json.dumps(rules["publish"])
    subscribe = json.dumps([*rules["subscribe"], f"_INBOX.{name}.>"])
    return f", permissions: {{publish: {{allow: {publish}}}, subscribe: {{allow: {subscribe}}}}}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedNats, dict[str, Path]]]:
    """A nats-server with one nkey user per entry of USERS, plus a password user `cli` that may
    only publish events; yields the server and each nkey user's seed file."""
    home = tmp_path_factory.mktemp("secured-nats")
    seeds, entries = {}, []
    for name, rules in USERS.items():
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        seeds[name] = home / f"{name}.nk"
        seeds[name].write_bytes(seed)
        public = nkeys.from_seed(bytearray(seed)).public_key.decode()
        entries.append(f"{{nkey: {public}{_permissions(name, rules)}}}")
    cli_rules = {"publish": ["mesh.events.>"], "subscribe": []}
    entries.append(f'{{user: cli, password: "{CLI_PASSWORD}"{_permissions("cli", cli_rules)}}}')
    conf = home / "auth.conf"
    conf.write_text("authorization { users = [\n  " + ",\n  ".join(entries) + "\n] }\n")
    nats_server = EmbeddedNats(store_dir=home / "store", extra_args=["-c", str(conf)]).start()
    try:
        yield nats_server, seeds
    finally:
        nats_server.stop()


@pytest.fixture(scope="module")
def settings(server, tmp_path_factory) -> MeshSettings:
    return MeshSettings(nats_url=server[0].url, namespace="mesh", home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def agents(settings) -> dict:
    return {name: SERVICES[name].load().build(settings).consumers for name in SERVICES}


@pytest.fixture
async def connect_as(server):
    """Connect as one of USERS (its seed, its own inbox prefix); closes what it opened."""
    opened: list[Client] = []

    async def connect(name: str) -> Client:
        nc = await nats.connect(server[0].url, nkeys_seed=str(server[1][name]), inbox_prefix=f"_INBOX.{name}")
        opened.append(nc)
        return nc

    yield connect
    for nc in opened:
        await nc.close()


@pytest.fixture
async def provisioned(connect_as, settings, agents) -> JetStreamContext:
    """The mesh's streams, consumers and buckets, made by `admin`, with one event waiting."""
    js = (await connect_as("admin")).jetstream()
    await provision(js, settings, [c for specs in agents.values() for c in specs], reconcile=True)
    await js.publish(settings.subjects.release_proposed, b"{}", headers={"Nats-Msg-Id": "probe-test-event"})
    return js


async def broker_state(js: JetStreamContext) -> dict:
    """Every stream's messages and every consumer's deliveries, waiting pulls and acks pending."""
    state = {}
    for info in await js.streams_info():
        name = info.config.name
        state[name] = (info.state.messages, info.state.last_seq)
        for consumer in await js.consumers_info(name):
            state[f"{name}/{consumer.name}"] = (
                consumer.delivered.stream_seq,
                consumer.num_waiting,
                consumer.num_ack_pending,
                consumer.num_pending,
            )
    return state


def by_label(results) -> dict[str, bool]:
    return {r.check.label: r.allowed for r in results}


async def test_a_user_allowed_only_events_may_publish_an_event_and_nothing_else(
    provisioned, connect_as, settings, agents
):
    """A user allowed to publish `mesh.events.>` and pull its own consumer is reported allowed for
    exactly those, and denied for reviews, outcomes, deadlines, advisories, buckets, other
    consumers (same stream, upper-case stream name) and deleting or creating streams."""
    results = by_label(await probe(await connect_as("security"), standard_checks(settings, agents)))

    assert results.pop("publish an event") is True
    assert results.pop("pull MESH_EVENTS/security") is True
    assert results["pull MESH_EVENTS/compliance"] is False
    for name in SERVICES:
        assert results[f"publish a review as {name}"] is False
    for label in ("publish an outcome", "schedule a deadline", "read outcomes", "delete a stream", "create a stream"):
        assert results[label] is False
    assert not any(results.values()), [label for label, allowed in results.items() if allowed]


async def test_an_all_allowed_user_is_allowed_everywhere_and_the_probe_changes_nothing(
    provisioned, connect_as, settings, agents
):
    """With every permission, every check is allowed, yet no stream gains a message (the
    Expected-Stream guard), no consumer hands out the waiting event or holds a pull (no reply
    subject), and no stream is deleted or created."""
    before = await broker_state(provisioned)
    assert before["MESH_EVENTS"][0] == 1 and before["MESH_EVENTS/security"][3] == 1  # something to pull

    results = await probe(await connect_as("admin"), standard_checks(settings, agents))

    assert [r.check.label for r in results if not r.allowed] == []
    assert len(results) > 20  # events, reviews, outcomes, deadlines, advisories, pulls, buckets, streams
    assert await broker_state(provisioned) == before


async def test_a_denied_subscription_is_reported_denied_and_each_result_names_its_own_subject(connect_as):
    """On one connection, a subscription the user may make is allowed and one it may not is
    denied, and a refused publish is not mistaken for a refused subscription (or vice versa)."""
    checks = [
        Check("read events", "subscribe", "mesh.events.>"),
        Check("read outcomes", "subscribe", "mesh.outcomes.>"),
        Check("publish an event", "publish", "mesh.events.release.proposed"),
        Check("read events again", "subscribe", "mesh.events.release.proposed"),
    ]

    results = await probe(await connect_as("reader"), checks)

    assert [r.allowed for r in results] == [True, False, False, True]
    assert 'subscription to "mesh.outcomes.>"' in results[1].detail
    assert 'publish to "mesh.events.release.proposed"' in results[2].detail


def test_the_cli_prints_a_table_of_what_the_credential_may_do(server, tmp_path):
    """`mesh provision --check-permissions` with MESH_NATS_CREDENTIALS names the server and the
    credential file, then one row per check with its subject and allowed/denied, and exits 0;
    `--json` (here for a password user) gives the same as data, the password masked."""
    port, seed = server[0].port, server[1]["security"]
    # a home of its own: no identity that `mesh up` generated elsewhere is picked up
    env = {**os.environ, "MESH_NAMESPACE": "mesh", "MESH_HOME": str(tmp_path / "mesh"), "COLUMNS": "200"}
    env.pop("MESH_NATS_CREDENTIALS", None)
    run = [sys.executable, "-m", "bus.ops.cli", "provision", "--check-permissions"]

    table = subprocess.run(
        run,
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "MESH_NATS_URL": server[0].url, "MESH_NATS_CREDENTIALS": str(seed)},
    )
    as_json = subprocess.run(
        [*run, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "MESH_NATS_URL": f"nats://cli:{CLI_PASSWORD}@127.0.0.1:{port}"},
    )

    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    rows = [line.split() for line in lines]
    assert lines[0] == f"permissions on nats://127.0.0.1:{port} with credential {seed}"
    assert ["publish", "an", "event", "mesh.events.release.proposed", "allowed"] in rows
    assert ["pull", "MESH_EVENTS/security", "$JS.API.CONSUMER.MSG.NEXT.MESH_EVENTS.security", "allowed"] in rows
    assert ["publish", "an", "outcome", "mesh.outcomes.release.probe.probe", "denied"] in rows
    assert lines[-1].endswith("denied; nothing was changed")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["server"] == f"nats://cli:***@127.0.0.1:{port}" and data["credential"] is None
    assert {row["subject"] for row in data["checks"] if row["allowed"]} == {"mesh.events.release.proposed"}
    assert CLI_PASSWORD not in as_json.stdout + as_json.stderr
