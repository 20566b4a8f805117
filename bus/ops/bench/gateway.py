"""`mesh bench gateway`: what going through the gateway adds to a proposal's round trip.

One embedded mesh (secured, offline reviewers, coordinator, one gateway). Each measurement is a
fresh proposal decided end to end, taken one at a time so nothing queues: the floor publishes
it straight on the bus and waits for its outcome (`MeshClient`, what `mesh publish --wait`
does); the gateway path POSTs it with `?wait` and reads the outcome from the answer. The two
alternate, so a noisy neighbour slows both alike; figures are medians of the same run.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
import uuid
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import httpx

from bus.client import MeshClient
from bus.errors import MeshError
from bus.ops.gateway_access import local_key
from bus.ops.launcher import start_mesh
from bus.ops.settings import MeshSettings
from contracts.releases import ReleaseProposed

SERVICES = ["security", "compliance", "coordinator", "gateway"]


@dataclass
class GatewayBenchResult:
    bus_seconds: list[float] = field(default_factory=list)
    gateway_seconds: list[float] = field(default_factory=list)

    @staticmethod
    def _median_ms(samples: list[float]) -> float:
        return statistics.median(samples) * 1000

    @staticmethod
    def _p90_ms(samples: list[float]) -> float:
        return statistics.quantiles(samples, n=10)[-1] * 1000 if len(samples) >= 2 else samples[0] * 1000

    def as_dict(self) -> dict:
        bus, gateway = self._median_ms(self.bus_seconds), self._median_ms(self.gateway_seconds)
        return {
            "proposals": len(self.bus_seconds),
            "bus_median_ms": round(bus, 2),
            "bus_p90_ms": round(self._p90_ms(self.bus_seconds), 2),
            "gateway_median_ms": round(gateway, 2),
            "gateway_p90_ms": round(self._p90_ms(self.gateway_seconds), 2),
            "added_median_ms": round(gateway - bus, 2),
            "ratio": round(gateway / bus, 3) if bus else None,
        }


def _fresh(template: ReleaseProposed) -> ReleaseProposed:
    return template.model_copy(update={"release_id": f"bench-{uuid.uuid4().hex[:12]}"})


async def _measure(mesh, key: str, proposals: int, warmup: int, timeout: float) -> GatewayBenchResult:
    template = ReleaseProposed.model_validate_json((files("contracts") / "samples" / "release_clean.json").read_text())
    gateway = next(s.url for s in mesh.services if s.name == "gateway")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    result = GatewayBenchResult()
    async with (
        await MeshClient.connect(mesh.settings, name="bench-gateway") as client,
        httpx.AsyncClient(timeout=timeout + 10) as http,
    ):

        async def over_bus() -> float:
            proposal = _fresh(template)
            started = time.perf_counter()
            await client.propose(proposal)
            if await client.wait_for_outcome(proposal, timeout=timeout) is None:
                raise MeshError(f"no outcome for {proposal.release_id} within {timeout:g} s over the bus")
            return time.perf_counter() - started

        async def over_gateway() -> float:
            body = _fresh(template).model_dump_json()
            started = time.perf_counter()
            response = await http.post(
                f"{gateway}/v1/events/release.proposed", params={"wait": timeout}, content=body, headers=headers
            )
            took = time.perf_counter() - started
            if response.status_code != 200:
                raise MeshError(f"the gateway answered {response.status_code}: {response.text[:300]}")
            return took

        for _ in range(warmup):
            await over_bus()
            await over_gateway()
        for _ in range(proposals):
            result.bus_seconds.append(await over_bus())
            result.gateway_seconds.append(await over_gateway())
    return result


def run_gateway_bench(
    settings: MeshSettings, *, home: Path, proposals: int, warmup: int, timeout: float = 30.0
) -> GatewayBenchResult:
    """Start the mesh in `home`, measure, stop it."""
    # A rate limit sized for the run: the benchmark must measure the path, not the 429s.
    settings = settings.model_copy(update={"home": home, "gateway_rate_limit": 10 * (proposals + warmup) + 100})
    if home.exists():
        shutil.rmtree(home)  # a fresh mesh, then its key (start_mesh's own `fresh` would delete the key)
    key, _ = local_key(settings)
    mesh = start_mesh(
        settings,
        names=SERVICES,
        home=home,
        embedded=True,
        env={"MESH_GATEWAY_RATE_LIMIT": str(settings.gateway_rate_limit)},
    )
    try:
        return asyncio.run(_measure(mesh, key, proposals, warmup, timeout))
    finally:
        mesh.stop()
