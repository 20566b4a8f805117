"""compose.yml for real: `mesh deploy compose` builds the images on the locally made base, Compose
starts NATS, `provision` and all nine services (on the host's network, on loopback; Jaeger left
out, an in-process OTLP receiver standing in; a fake Anthropic API as the model, its key and URL
passed through), and the running stack is proven from outside:
health, outcomes through the gateway, a credential confined to its service, a replica stopped
under load with nothing lost or duplicated, and readiness while NATS is away.

Needs a Docker engine and Compose (`.ci/run` installs and starts them); fails, never skips,
without them. Tears everything down (containers, network, volume) even when a test fails.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from bus.client import MeshClient
from bus.connect import connect
from bus.errors import NatsUnreachable
from bus.ops.embedded import free_port
from bus.ops.otlp_receiver import OtlpReceiver
from bus.ops.settings import MeshSettings
from tests.deploy.conftest import Deployment
from tests.deploy.stack import SERVICES, Stack, compose_config, container_logs, run
from tests.deploy.test_compose_file import COMPOSE, HOSTNET, environment
from tests.e2e.support import sample
from tests.fakes.anthropic_server import APPROVE, FakeAnthropic

pytestmark = pytest.mark.timeout(900)


@dataclass
class Running:
    stack: Stack
    deployment: Deployment
    nats_port: int
    gateway: str
    registry: str
    spans: list[dict]
    model: FakeAnthropic
    healthy_after: float  # seconds from `up` to every container healthy

    @property
    def operator(self) -> MeshSettings:
        """The operator's settings (its seed from the deployment), as the CLI would have them."""
        return MeshSettings(
            nats_url=f"nats://127.0.0.1:{self.nats_port}",
            namespace="mesh",
            nats_credentials=self.deployment.out / "identities" / "operator.nk",
        )

    def propose_over_http(self, proposal) -> dict:
        key = (self.deployment.out / "gateway" / "local.key").read_text().strip()
        response = httpx.post(
            f"{self.gateway}/v1/events/release.proposed",
            params={"wait": 30},
            content=proposal.model_dump_json(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=45,
        )
        assert response.status_code < 300, response.text
        return response.json()


@pytest.fixture(scope="module")
def stack(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    spans: list[dict] = []
    receiver = OtlpReceiver(spans.append).start()
    # A model that takes its time, so a stopped reviewer holds reviews in flight; compose passes
    # the key and the URL through from the environment, as it would a real key.
    model = FakeAnthropic(seed=17).start()
    model.profile(latency=0.8, jitter=0.25, answer=APPROVE)
    nats_port, gateway_port, registry_port = free_port(), free_port(), free_port()
    env = environment(
        MESH_DEPLOY_DIR=str(deployment.out),
        MESH_TEST_NATS_PORT=str(nats_port),
        MESH_TEST_GATEWAY_PORT=str(gateway_port),
        MESH_TEST_REGISTRY_PORT=str(registry_port),
        MESH_TEST_OTLP_ENDPOINT=receiver.endpoint,
        ANTHROPIC_API_KEY="sk-ant-test-deploy",
        ANTHROPIC_BASE_URL=model.url,
    )
    # compose.yml with the host-network override, as Compose merges them; published ports can
    # apply on no host network (Compose v2 would say `ports: !reset []`; v1 has no way to).
    config = compose_config([COMPOSE, HOSTNET], env)
    for service in config["services"].values():
        service.pop("ports", None)
    file = tmp_path_factory.mktemp("stack") / "compose.json"
    file.write_text(json.dumps(config, indent=2))
    stack = Stack(project=f"meshtest{uuid.uuid4().hex[:8]}", file=file, env=env)
    try:
        started = time.monotonic()
        stack("up", "--detach", "nats", "provision", *SERVICES)
        stack.wait_healthy(SERVICES, timeout=180)
        yield Running(
            stack,
            deployment,
            nats_port,
            f"http://127.0.0.1:{gateway_port}",
            f"http://127.0.0.1:{registry_port}",
            spans,
            model,
            time.monotonic() - started,
        )
    finally:
        stack.down()
        receiver.stop()
        model.close()
        left = run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}"]).stdout
        assert not left.strip(), f"containers left behind: {left}"


def report(line: str) -> None:
    print(f"\ndeploy: {line}", flush=True)  # the figures `pytest -s tests/deploy` shows


def eventually(check, *, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        if value := check():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def test_the_image_runs_as_a_user_without_installers_or_compilers(deployment: Deployment) -> None:
    """The services' image: a non-root user, a HEALTHCHECK and SIGTERM as its stop signal, and
    neither pip nor a compiler in it (NATS's image: a non-root user too)."""
    config = json.loads(run(["docker", "image", "inspect", deployment.image]).stdout)[0]["Config"]
    assert config["User"] == "mesh" and config["StopSignal"] == "SIGTERM"
    assert config["Healthcheck"]["Test"] == ["CMD", "mesh-healthcheck", "/healthz"]
    probe = "id -u; for tool in pip pip3 gcc cc make; do command -v $tool; done; true"
    found = run(["docker", "run", "--rm", "--network", "none", deployment.image, "sh", "-c", probe]).stdout.split()
    assert found == ["10001"], found
    nats = json.loads(run(["docker", "image", "inspect", deployment.nats_image]).stdout)[0]["Config"]
    assert nats["User"] == "10001:10001"


def test_every_container_becomes_healthy(stack: Running) -> None:
    """`provision` ran once and exited 0, and each of the nine services has one healthy container."""
    (provision,) = stack.stack.containers("provision", every=True)
    assert provision["State"]["ExitCode"] == 0, container_logs(provision)[-20:]
    assert {s: stack.stack.health(s) for s in SERVICES} == {s: ["healthy"] for s in SERVICES}
    d = stack.deployment
    report(f"images {d.image} {d.size_mb(d.image):.0f} MB, {d.nats_image} {d.size_mb(d.nats_image):.0f} MB")
    report(
        f"built in {d.build_seconds:.0f} s; `up` to all {len(SERVICES)} services healthy in {stack.healthy_after:.1f} s"
    )


def test_the_gateway_approves_a_clean_release_and_blocks_a_risky_one(stack: Running) -> None:
    """Through the published front door: the clean sample is approved, the one with a planted
    credential blocked (whatever the model says: the rules' finding stands); the reviewers called
    the model with the key passed through; the services' spans reach their OTLP endpoint."""
    run_id = uuid.uuid4().hex[:6]
    clean = stack.propose_over_http(sample("release_clean", release_id=f"deploy-clean-{run_id}"))
    risky = stack.propose_over_http(sample("release_secret", release_id=f"deploy-risky-{run_id}"))
    assert clean["outcome"]["outcome"] == "approved", clean
    assert risky["outcome"]["outcome"] == "blocked", risky
    report(f"outcomes: clean {clean['outcome']['outcome']}, risky {risky['outcome']['outcome']}")
    # the SDK sends the key as `Authorization: Bearer` (2.x) or `x-api-key`
    sent = {r.headers.get("x-api-key") or r.headers.get("authorization", "") for r in stack.model.requests}
    assert {key.removeprefix("Bearer ") for key in sent} == {"sk-ant-test-deploy"}, "the key did not pass through"

    def traced() -> set[str]:
        names = set()
        for export in list(stack.spans):
            for resource in export.get("resourceSpans", []):
                for attribute in resource["resource"]["attributes"]:
                    if attribute["key"] == "service.name":
                        names.add(attribute["value"]["stringValue"])
        return names >= {"gateway", "security", "compliance", "coordinator"} and names

    eventually(traced, timeout=30, what="spans from the gateway, both reviewers and the coordinator")


def test_a_service_credential_cannot_publish_as_another(stack: Running) -> None:
    """The security container's mounted seed may publish security's reviews and pull its own
    consumer, and the server refuses it a compliance review, an outcome or compliance's
    consumer; a client with no credential is not admitted at all."""
    (security,) = stack.stack.containers("security")
    done = run(["docker", "exec", security["Id"], "mesh", "provision", "--check-permissions", "--json"], timeout=120)
    answer = json.loads(done.stdout)
    checks = {check["check"]: check["allowed"] for check in answer["checks"]}
    assert answer["credential"] == "/run/secrets/security.nk"
    assert checks["publish a review as security"] is True
    assert checks["pull MESH_EVENTS/security"] is True
    assert checks["publish a review as compliance"] is False
    assert checks["publish an outcome"] is False
    assert checks["pull MESH_EVENTS/compliance"] is False
    nobody = stack.operator.model_copy(update={"nats_credentials": None})
    with pytest.raises(NatsUnreachable, match="requires a credential"):
        asyncio.run(connect(nobody, name="no-credential"))
    report("permissions: security may publish as security, not as compliance, nor an outcome; no credential, no entry")


def test_a_stopped_reviewer_drains_and_its_replica_takes_over(stack: Running) -> None:
    """With `--scale security=2`, one replica is stopped (SIGTERM) while proposals keep coming and
    it holds reviews waiting for the model: it finishes and acks them, exits on the signal well
    within the grace period (no SIGKILL), every proposal gets exactly one outcome and one security
    review (nothing lost, nothing it had finished done again), no stream sequence is acked by
    both replicas, the other replica handles the rest, and a replacement comes up healthy."""
    stack.stack("up", "--detach", "--no-deps", "--scale", "security=2", "security")
    stack.stack.wait_healthy(("security",), replicas={"security": 2}, timeout=120)
    victim, survivor = stack.stack.containers("security")
    result = asyncio.run(_propose_while_stopping(stack, victim, count=90, per_second=20))
    missing = [r for r, n in result.outcomes.items() if n == 0]
    assert missing == [], f"lost: {missing}"
    assert [r for r, n in result.outcomes.items() if n > 1] == [], "an outcome published twice"
    assert [r for r, n in result.reviews.items() if n != 1] == [], f"security reviews per release: {result.reviews}"
    assert set(result.verdicts) == {"approved"}, result.verdicts
    state = json.loads(run(["docker", "inspect", victim["Id"]]).stdout)[0]["State"]
    # 143: it ended on the SIGTERM once shut down (uvicorn re-raises the signal it handled);
    # 137 would be Docker's SIGKILL at the end of the grace period, cutting the drain short.
    assert state["ExitCode"] == 143 and not state["OOMKilled"], (state, container_logs(victim)[-20:])
    assert result.stop_seconds < 30
    # each review waits ~0.8 s for the model: the victim held some when stopped, and finished them
    finished = _acked_after_stopping(victim)
    assert finished > 0, container_logs(victim)[-30:]
    acked = {c["Name"]: _acked_sequences(c) for c in (victim, survivor)}
    both = set.intersection(*(set(seqs) for seqs in acked.values()))
    assert both == set(), f"acked by both replicas: {sorted(both)}"
    assert all(seqs.total() == len(seqs) for seqs in acked.values()), "a replica acked a sequence twice"
    handled = {name.lstrip("/"): len(seqs) for name, seqs in acked.items()}
    assert all(handled.values()), handled
    stack.stack("up", "--detach", "--no-deps", "--scale", "security=2", "security")
    stack.stack.wait_healthy(("security",), replicas={"security": 2}, timeout=120)
    report(
        f"scale-and-stop: {len(result.outcomes)} proposals, lost 0, duplicated 0; the stopped replica finished "
        f"{finished} in-flight reviews while draining and exited after {result.stop_seconds:.1f} s; proposals acked "
        f"per replica {handled}; a replacement is healthy"
    )


@dataclass
class LoadResult:
    outcomes: Counter  # release id → outcomes heard
    reviews: Counter  # release id → security reviews heard (every publish, duplicates included)
    verdicts: Counter
    stop_seconds: float


async def _propose_while_stopping(stack: Running, victim: dict, *, count: int, per_second: float) -> LoadResult:
    """Publish `count` clean proposals at `per_second`; stop `victim` a third of the way in;
    hear every security review and outcome as a core-NATS subscriber until all are decided."""
    settings = stack.operator
    run_id = uuid.uuid4().hex[:6]
    proposals = [sample("release_clean", release_id=f"load-{run_id}-{i}") for i in range(count)]
    outcomes, reviews, verdicts = Counter({p.release_id: 0 for p in proposals}), Counter(), Counter()
    stopped: dict[str, float] = {}

    async def heard_outcome(msg) -> None:
        decided = json.loads(msg.data)
        if decided["release_id"] in outcomes:
            outcomes[decided["release_id"]] += 1
            verdicts[decided["outcome"]] += 1

    async def heard_review(msg) -> None:
        reviews[json.loads(msg.data)["release_id"]] += 1

    def stop() -> None:
        started = time.monotonic()
        run(["docker", "stop", "--time", "30", victim["Id"]], timeout=60)
        stopped["seconds"] = time.monotonic() - started

    async with await MeshClient.connect(settings, name="deploy-test") as client:
        s = settings.subjects
        await client.nc.subscribe(s.rounds_decided, cb=heard_outcome)
        await client.nc.subscribe(s.review_submitted("security"), cb=heard_review)
        stopper = threading.Thread(target=stop)
        for i, proposal in enumerate(proposals):
            if i == count // 3:
                stopper.start()
            await client.propose(proposal)
            await asyncio.sleep(1 / per_second)
        deadline = time.monotonic() + 60
        while (not all(outcomes.values()) or stopper.is_alive()) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # a late duplicate would be heard by now
        stopper.join()
    ours = {p.release_id for p in proposals}
    return LoadResult(outcomes, Counter({r: reviews[r] for r in ours}), verdicts, stopped["seconds"])


def _acked_after_stopping(container: dict) -> int:
    """Proposals this container acked after its log says it began stopping (its drain)."""
    events = [record.get("event") for record in _records(container)]
    return events[events.index("stopping") :].count("✓ acked") if "stopping" in events else 0


def _records(container: dict) -> list[dict]:
    records = []
    for line in container_logs(container):
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _acked_sequences(container: dict) -> Counter:
    """Stream sequences of proposals this container's log says it acked."""
    acked: Counter = Counter()
    for record in _records(container):
        if record.get("event") == "✓ acked" and str(record.get("subject", "")).endswith("events.release.proposed"):
            acked[record["seq"]] += 1
    return acked


def test_readiness_fails_while_nats_is_away_and_recovers(stack: Running) -> None:
    """NATS stopped: /readyz answers 503 and Docker marks the services unhealthy; NATS back (same
    volume): ready and healthy again, and a proposal through the gateway is decided as before."""

    def ready(url: str) -> int:
        try:
            return httpx.get(f"{url}/readyz", timeout=3).status_code
        except httpx.HTTPError:
            return 0

    stack.stack("stop", "--timeout", "10", "nats")
    eventually(
        lambda: ready(stack.gateway) == 503 and ready(stack.registry) == 503, timeout=20, what="503 without NATS"
    )
    eventually(lambda: "unhealthy" in stack.stack.health("coordinator"), timeout=30, what="coordinator unhealthy")
    stack.stack("start", "nats")
    eventually(lambda: ready(stack.gateway) == 200 and ready(stack.registry) == 200, timeout=60, what="ready again")
    stack.stack.wait_healthy(SERVICES, timeout=90)
    again = stack.propose_over_http(sample("release_clean", release_id=f"deploy-after-{uuid.uuid4().hex[:6]}"))
    assert again["outcome"]["outcome"] == "approved", again
    report("readiness: 503 and unhealthy while NATS was stopped; ready, healthy and deciding again after")
