"""NATS micro discovery (ADR-32) as the official NATS JavaScript client's service API sees it:
real services as processes, real counts."""

from __future__ import annotations

import asyncio
import json

import httpx

from bus.client import MeshClient
from tests.e2e.support import eventually, sample


async def stats_of(client: MeshClient, service: str, endpoint: str) -> dict:
    reply = await client.nc.request(f"$SRV.STATS.{service}", b"", timeout=2)
    return next(e for e in json.loads(reply.data)["endpoints"] if e["name"] == endpoint)


async def test_each_consumer_is_an_endpoint_with_real_counts(settings, launch, node_tools):
    """INFO lists every subject a service consumes as an endpoint whose queue group is the durable
    its replicas share (stream, durable, contract and schema in its metadata); STATS counts what
    it handled: requests, errors with the last one, processing time and its average. The shapes
    are those the official client's own services answer with."""
    await asyncio.to_thread(launch, settings, ["security", "coordinator"])
    s = settings.subjects
    async with await MeshClient.connect(settings) as client:
        await client.propose(sample("release_clean", release_id="rel-micro"))
        await client.js.publish(s.release_proposed, b"not json", headers={"Nats-Msg-Id": "micro-not-json"})

        async def both_handled():
            return (await stats_of(client, "security", "security"))["num_requests"] >= 2

        assert await eventually(both_handled, timeout=20)

    seen = await asyncio.to_thread(node_tools.run, "micro.mjs", settings.nats_url, "security")
    (ping,), (info,), (stats,) = seen["ping"], seen["info"], seen["stats"]
    assert ping["name"] == info["name"] == stats["name"] == "security"
    endpoints = {e["name"]: e for e in info["endpoints"]}
    assert set(endpoints) == {"security", "security-exhausted"}
    reviews = endpoints["security"]
    assert (reviews["subject"], reviews["queue_group"]) == (s.release_proposed, "security")
    assert reviews["metadata"]["stream"] == s.events_stream and reviews["metadata"]["durable"] == "security"
    assert reviews["metadata"]["contract"] == "release.proposed"
    async with httpx.AsyncClient(timeout=5) as http:  # the schema is a path on the instance's HTTP API
        schema = await http.get(info["metadata"]["url"] + reviews["metadata"]["schema"])
    assert schema.status_code == 200 and "release_id" in schema.json()["required"]
    exhausted = endpoints["security-exhausted"]
    assert exhausted["subject"] == s.max_deliveries_advisory(s.events_stream, "security")
    assert exhausted["metadata"]["stream"] == s.advisories_stream

    counts = next(e for e in stats["endpoints"] if e["name"] == "security")
    assert counts["num_requests"] == 2 and counts["num_errors"] == 1  # the proposal, and the bytes that were not JSON
    assert "JSON" in counts["last_error"], counts
    assert counts["processing_time"] > 0
    assert counts["average_processing_time"] == counts["processing_time"] // counts["num_requests"]

    reference = seen["reference"]  # a service written with the official API: the shapes to match
    assert set(reference["info"]) <= set(info) and set(reference["stats"]) <= set(stats)
    assert set(reference["info"]["endpoints"][0]) <= set(reviews)
    assert set(reference["stats"]["endpoints"][0]) <= set(counts)
    for key, value in reference["stats"]["endpoints"][0].items():
        assert type(counts[key]) is type(value), key


async def test_a_service_lists_every_consumer_under_its_own_queue_group(settings, launch, node_tools):
    """The coordinator reads five consumers: each is an endpoint on its filter subject (wildcards
    as NATS writes them), with its durable as queue group."""
    await asyncio.to_thread(launch, settings, ["coordinator"])
    s = settings.subjects

    seen = await asyncio.to_thread(node_tools.run, "micro.mjs", settings.nats_url, "coordinator")

    (info,) = seen["info"]
    served = {(e["subject"], e["queue_group"]) for e in info["endpoints"] if not e["name"].endswith("-exhausted")}
    assert served == {
        (s.release_proposed, "coordinator-proposals"),
        (s.reviews, "coordinator-reviews"),
        (s.deadlines_fired, "coordinator-deadlines"),
        (s.approval_decisions, "coordinator-approvals"),  # people's decisions on escalated releases
        (s.approval_timers_fired, "coordinator-approval-timers"),
    }
    (stats,) = seen["stats"]
    assert {e["name"] for e in stats["endpoints"]} == {e["name"] for e in info["endpoints"]}
    assert all(e["num_requests"] == 0 and e["num_errors"] == 0 for e in stats["endpoints"])
