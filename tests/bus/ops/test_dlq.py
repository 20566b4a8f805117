"""`mesh dlq list | show | replay | purge` against a real nats-server and a real failing service."""

from __future__ import annotations

import asyncio
import json

from bus.runtime import Agent, Delivery
from contracts.releases import ReleaseProposed
from tests.bus.ops.test_cli import mesh
from tests.bus.test_runtime import dead_letters, proposal_json, publish_raw
from tests.settled import consumer_settled


async def test_dead_letters_are_listed_shown_replayed_once_and_purged(make_settings):
    """A record can be listed and shown with its payload and error; replaying it re-publishes
    the original payload and headers under a new message id, marked as a replay, which the now
    healthy service handles; a second replay of the same record publishes nothing; purge
    empties the stream; a sequence that is not there gets a clear error."""
    settings = make_settings(max_deliver=1)
    broken = True
    seen: list[tuple[str, dict]] = []
    agent = Agent("fragile", settings=settings)

    @agent.consumes(
        stream=settings.subjects.events_stream, subject=settings.subjects.release_proposed, model=ReleaseProposed
    )
    async def handle(event: ReleaseProposed, delivery: Delivery) -> None:
        if broken:
            raise RuntimeError("database is down")
        seen.append((event.release_id, dict(delivery.message.headers or {})))

    async with agent.running():
        await publish_raw(
            settings,
            settings.subjects.release_proposed,
            proposal_json("rel-dlq"),
            {"Nats-Msg-Id": "proposal:rel-dlq", "X-Origin": "ci"},
        )
        [record] = await dead_letters(settings, expect=1)
        assert record.error_type == "failed"

        listed = await asyncio.to_thread(mesh, "dlq", "list", "--json", settings=settings)
        assert listed.returncode == 0, listed.stderr
        [row] = json.loads(listed.stdout)
        assert row["service"] == "fragile" and "database is down" in row["error"]
        seq = row["seq"]

        table = await asyncio.to_thread(mesh, "dlq", "list", settings=settings, COLUMNS="200")
        assert "fragile" in table.stdout and "database is down" in table.stdout

        shown = await asyncio.to_thread(mesh, "dlq", "show", str(seq), settings=settings)
        assert shown.returncode == 0, shown.stderr
        detail = json.loads(shown.stdout)
        assert json.loads(detail["payload"])["release_id"] == "rel-dlq"
        assert detail["headers"]["X-Origin"] == "ci" and detail["deliveries"] == 1

        broken = False
        replayed = await asyncio.to_thread(mesh, "dlq", "replay", str(seq), settings=settings)
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed dead letter" in replayed.stdout
        for _ in range(50):
            if seen:
                break
            await asyncio.sleep(0.1)
        [(release_id, headers)] = seen
        assert release_id == "rel-dlq"
        assert headers["X-Origin"] == "ci"
        assert headers["Mesh-Replay-Of"] == str(seq)
        assert headers["Mesh-Original-Msg-Id"] == "proposal:rel-dlq"
        assert headers["Nats-Msg-Id"] != "proposal:rel-dlq"  # a new id, or the stream would drop it

        again = await asyncio.to_thread(mesh, "dlq", "replay", str(seq), settings=settings)
        assert again.returncode == 0 and "replayed already" in again.stdout
        # the CLI has exited: whatever it published is stored, and the service has settled it all
        await consumer_settled(settings.nats_url, settings.subjects.events_stream, "fragile")
        assert len(seen) == 1

    missing = await asyncio.to_thread(mesh, "dlq", "show", "9999", settings=settings)
    assert missing.returncode == 1 and "no dead letter at sequence 9999" in missing.stderr

    purged = await asyncio.to_thread(mesh, "dlq", "purge", "--yes", settings=settings)
    assert purged.returncode == 0 and "deleted 1 dead letter" in purged.stdout
    empty = await asyncio.to_thread(mesh, "dlq", "list", settings=settings)
    assert "no dead letters" in empty.stdout
