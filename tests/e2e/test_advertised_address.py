"""A service advertises the address it actually serves, and no address outlives its instances."""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import nats
import pytest

from bus.ops.embedded import free_port
from bus.ops.processes import child_env, spawn
from tests.e2e.support import eventually

FAST_HEARTBEAT = {"heartbeat_seconds": 1.0, "heartbeat_ttl_seconds": 3.0}
COMMANDS = {
    "faststream run": [sys.executable, "-m", "faststream", "run", "services.security:app", "--port"],
    "mesh run": [sys.executable, "-m", "bus.ops.cli", "run", "security", "--port"],
}


async def get_json(url: str) -> dict:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(url)).json()


async def instance_records(settings, agent: str) -> list[dict]:
    nc = await nats.connect(settings.nats_url)
    try:
        kv = await nc.jetstream().key_value(settings.subjects.instances_bucket)
        keys = [k for k in await kv.keys() if k.startswith(f"{agent}.")]
        return [json.loads((await kv.get(k)).value) for k in keys]
    except nats.js.errors.NoKeysError:
        return []
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("command", "advertise"),
    [("faststream run", None), ("mesh run", None), ("mesh run", "http://security.internal:9000")],
    ids=["faststream-run", "mesh-run", "mesh-run-advertise-url"],
)
async def test_the_advertised_url_is_the_bound_port_and_leaves_with_the_instance(
    command, advertise, make_settings, launch, service_identities, tmp_path
):
    """`faststream run services.security:app --port P` and `mesh run security --port P` (with
    MESH_HTTP_PORT left at 8080) advertise http://127.0.0.1:P — or MESH_ADVERTISE_URL when set —
    in their instance record, their own card and the registry; once the process is SIGKILLed the
    registry serves that URL nowhere within the heartbeat TTL, not even for ?include=stale."""
    settings = make_settings(**FAST_HEARTBEAT)
    registry = (await asyncio.to_thread(launch, settings, ["registry"])).services[0].url
    port = free_port()
    expected = advertise or f"http://127.0.0.1:{port}"
    env = child_env(**{**settings.as_env(), "MESH_LOG_FORMAT": "json"})
    env.pop("MESH_HTTP_PORT", None)
    env.pop("MESH_ADVERTISE_URL", None)
    if advertise:
        env["MESH_ADVERTISE_URL"] = advertise
    if identities := service_identities(settings, ["security"]):
        env["MESH_NATS_CREDENTIALS"] = str(identities.credential("security"))
    process = spawn([*COMMANDS[command], str(port)], env=env, log_path=tmp_path / "security.log")
    try:

        async def registered() -> dict | None:
            agents = (await get_json(f"{registry}/agents?include=stale"))["agents"]
            return next((a for a in agents if a["name"] == "security" and a["live"]), None)

        listed = await eventually(registered, timeout=30)
        assert listed, (tmp_path / "security.log").read_text()[-3000:]
        assert listed["url"] == expected
        assert [r["url"] for r in await instance_records(settings, "security")] == [expected]
        detail = await get_json(f"{registry}/agents/security")
        assert [i["url"] for i in detail["instanceList"]] == [expected]
        http = [i["url"] for i in detail["card"]["supportedInterfaces"] if i["url"].startswith("http")]
        assert http == [expected]
        own = await get_json(f"http://127.0.0.1:{port}/.well-known/agent-card.json")
        assert [i["url"] for i in own["supportedInterfaces"] if i["url"].startswith("http")] == [expected]
        schemas = own["capabilities"]["extensions"][0]["params"]["consumes"]
        assert schemas[0]["schema"].startswith(f"{expected}/schemas/")
    finally:
        process.kill()
        process.wait()

    async def forgotten() -> bool:
        stale = (await get_json(f"{registry}/agents?include=stale"))["agents"]
        card = await get_json(f"{registry}/agents/security/card")
        detail = await get_json(f"{registry}/agents/security")
        return not any(expected in json.dumps(document) for document in (stale, card, detail))

    assert await eventually(forgotten, timeout=3.0 + 1.0 + 2.0), "the registry still serves the dead instance's URL"
    security = next(
        a for a in (await get_json(f"{registry}/agents?include=stale"))["agents"] if a["name"] == "security"
    )
    assert security["live"] is False and security["url"] is None
