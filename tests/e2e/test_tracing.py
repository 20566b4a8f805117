"""One flow, one trace: real service processes and the `mesh publish` CLI export their spans over
OTLP/HTTP (the standard OTEL_* variables) to a receiver in the test, against a real nats-server."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from bus.ops.otlp_receiver import OtlpReceiver
from contracts.outcomes import RoundDecided
from tests.bus.ops.test_cli import mesh
from tests.e2e.support import eventually, sample


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status: str
    status_message: str


def _value(value: dict[str, Any]) -> Any:
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    for kind, convert in (("stringValue", str), ("intValue", int), ("boolValue", bool), ("doubleValue", float)):
        if kind in value:
            return convert(value[kind])
    return None


def _attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items}


class Collected:
    """Every span the receiver got, flattened (thread-safe: the receiver serves from threads)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def add(self, export: dict[str, Any]) -> None:
        found = []
        for resource in export.get("resourceSpans", []):
            service = _attributes(resource.get("resource", {}).get("attributes", [])).get("service.name", "")
            for scope in resource.get("scopeSpans", []):
                for s in scope.get("spans", []):
                    status = s.get("status", {})
                    found.append(
                        Span(
                            service=service,
                            name=s["name"],
                            trace_id=s["traceId"],
                            span_id=s["spanId"],
                            parent_id=s.get("parentSpanId", ""),
                            kind=s.get("kind", ""),
                            attributes=_attributes(s.get("attributes", [])),
                            events=[(e["name"], _attributes(e.get("attributes", []))) for e in s.get("events", [])],
                            status=status.get("code", ""),
                            status_message=status.get("message", ""),
                        )
                    )
        with self._lock:
            self.spans.extend(found)

    def of_trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def of_service(self, service: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.service == service]

    def about(self, release_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.attributes.get("mesh.release_id") == release_id]


def one(spans: list[Span], *, service: str, name: str) -> Span:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, f"{service} {name}: {len(found)} in {tree(spans)}"
    return found[0]


def tree(spans: list[Span]) -> str:
    """The spans as an indented tree of `service: name` (children in arrival order), for failure messages."""
    ids = {s.span_id for s in spans}
    lines: list[str] = []

    def draw(span: Span, depth: int) -> None:
        lines.append(f"{'  ' * depth}{span.service}: {span.name}")
        for child in spans:
            if child.parent_id == span.span_id:
                draw(child, depth + 1)

    for root in [s for s in spans if s.parent_id not in ids]:
        draw(root, 0)
    return "\n" + "\n".join(lines)


@pytest.fixture
def spans(monkeypatch):
    """A receiver in this process; every process started from here exports to it (BSP every 100 ms)."""
    collected = Collected()
    with OtlpReceiver(collected.add) as receiver:
        for name in ("OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        yield collected


async def publish_with_cli(settings, tmp_path, release_id: str, *, wait: float, as_json: bool = True):
    """`mesh publish … --wait` as a user runs it: (the trace id it printed, the proposal, the
    outcome as printed with --json, else None). The trace line goes to stdout, or stderr with --json."""
    proposal = sample("release_clean", release_id=release_id)
    path = tmp_path / f"{release_id}.json"
    path.write_text(proposal.model_dump_json())
    flags = ["--json"] if as_json else []
    result = await asyncio.to_thread(
        mesh, "publish", "release.proposed", str(path), "--wait", str(wait), *flags, settings=settings
    )
    printed = re.search(r"^trace ([0-9a-f]{32})$", result.stderr if as_json else result.stdout, re.MULTILINE)
    assert printed, result.stdout + result.stderr
    return printed.group(1), proposal, RoundDecided.model_validate_json(result.stdout) if as_json else None


async def test_one_proposal_from_the_cli_is_one_trace_with_every_hop_in_order(settings, launch, spans, tmp_path):
    """`mesh publish` starts the trace; each reviewer's `process` is a child of the CLI's `send`, each
    review's `send` a child of its reviewer's `process`, the coordinator's `process` of each review a
    child of that `send`, and the outcome's `send` a child of the deciding review's `process`, which
    shows the KV compare-and-set that decided the round as a `kv.update` event (the proposal's
    `process` shows the one that opened it). Every span about the release is in that one
    trace, which the outcome and both reviews record as `trace_id`."""
    await asyncio.to_thread(launch, settings, ["security", "compliance", "coordinator"])
    trace_id, _, outcome = await publish_with_cli(settings, tmp_path, "rel-trace-1", wait=20)
    ns = settings.namespace

    expected = [
        ("mesh-cli", "mesh publish release.proposed"),
        ("mesh-cli", f"send {ns}.events.release.proposed"),
        *[(service, f"process {ns}.events.release.proposed") for service in ("security", "compliance", "coordinator")],
        *[(reviewer, f"send {ns}.reviews.release.*") for reviewer in ("security", "compliance")],
        ("coordinator", f"process {ns}.reviews.release.*"),
        ("coordinator", f"process {ns}.reviews.release.*"),
        ("coordinator", f"send {ns}.outcomes.release.*.*"),
    ]

    async def complete():  # each process exports on its own schedule: wait for every hop
        found = spans.of_trace(trace_id)
        have = sorted((s.service, s.name) for s in found)
        return found if all(have.count(hop) >= expected.count(hop) for hop in expected) else None

    found = await eventually(complete, timeout=10)
    assert found, tree(spans.of_trace(trace_id))
    assert outcome.trace_id == trace_id
    assert [r.trace_id for r in outcome.reviews] == [trace_id, trace_id]
    assert {s.trace_id for s in spans.about("rel-trace-1")} == {trace_id}

    root = one(found, service="mesh-cli", name="mesh publish release.proposed")
    sent = one(found, service="mesh-cli", name=f"send {ns}.events.release.proposed")
    assert root.parent_id == "" and sent.parent_id == root.span_id
    assert sent.kind == "SPAN_KIND_PRODUCER" and sent.attributes["messaging.system"] == "nats"
    coordinator = one(found, service="coordinator", name=f"process {ns}.events.release.proposed")
    assert coordinator.parent_id == sent.span_id
    review_processes = {}
    for reviewer in ("security", "compliance"):
        processed = one(found, service=reviewer, name=f"process {ns}.events.release.proposed")
        review_sent = one(found, service=reviewer, name=f"send {ns}.reviews.release.*")
        assert processed.parent_id == sent.span_id and processed.kind == "SPAN_KIND_CONSUMER"
        assert processed.attributes["mesh.release_id"] == "rel-trace-1"
        assert processed.attributes["messaging.consumer.group.name"] == reviewer
        assert review_sent.parent_id == processed.span_id
        assert review_sent.attributes["messaging.destination.name"] == settings.subjects.review_submitted(reviewer)
        [counted] = [
            s for s in found if s.name == f"process {ns}.reviews.release.*" and s.parent_id == review_sent.span_id
        ]
        assert counted.service == "coordinator"
        review_processes[counted.span_id] = counted

    outcome_sent = one(found, service="coordinator", name=f"send {ns}.outcomes.release.*.*")
    assert outcome_sent.parent_id in review_processes
    kv_update = f"kv.update {settings.subjects.rounds_bucket}"
    deciding_process = review_processes[outcome_sent.parent_id]
    [deciding] = [a for name, a in deciding_process.events if name == kv_update and a.get("mesh.round.decided")]
    assert deciding["mesh.kv.attempts"] >= 1 and deciding["mesh.round.state"] == "decided"
    assert any(name == kv_update and a["mesh.kv.changed"] for name, a in coordinator.events)  # the round opened


async def test_a_deadline_fallback_round_shows_the_deadline_firing_in_its_trace(
    settings, launch, spans, tmp_path, client
):
    """Compliance never answers: the server fires the round's deadline with the schedule's headers,
    so the coordinator's `process` of the firing is a child of the `send` that scheduled it, shows
    `mesh.deadline.fired` with the fallback applied, and publishes the outcome in the same trace."""
    await asyncio.to_thread(launch, settings, ["security", "coordinator"], deadline_seconds=2)
    trace_id, proposal, _ = await publish_with_cli(settings, tmp_path, "rel-trace-dl", wait=15, as_json=False)
    outcome = await client.outcome_of(proposal)
    ns = settings.namespace
    assert outcome.missing == ["compliance"] and outcome.trace_id == trace_id

    fired_name = f"process {ns}.deadlines.fired.*.*"
    found = await eventually(
        lambda: _spans_when(spans, trace_id, f"send {ns}.outcomes.release.*.*", fired_name), timeout=10
    )
    assert found, tree(spans.of_trace(trace_id))
    assert {s.trace_id for s in spans.about("rel-trace-dl")} == {trace_id}
    opened = one(found, service="coordinator", name=f"process {ns}.events.release.proposed")
    scheduled = one(found, service="coordinator", name=f"send {ns}.deadlines.schedule.*.*")
    fired = one(found, service="coordinator", name=fired_name)
    outcome_sent = one(found, service="coordinator", name=f"send {ns}.outcomes.release.*.*")
    assert scheduled.parent_id == opened.span_id
    assert fired.parent_id == scheduled.span_id
    assert outcome_sent.parent_id == fired.span_id
    [(_, event)] = [e for e in fired.events if e[0] == "mesh.deadline.fired"]
    assert event["mesh.missing"] == ["compliance"]
    assert event["mesh.fallbacks_applied"] == [f"compliance={outcome.fallbacks_applied['compliance']}"]


async def _spans_when(spans: Collected, trace_id: str, *names: str) -> list[Span] | None:
    found = spans.of_trace(trace_id)
    return found if all(any(s.name == n for s in found) for n in names) else None


async def test_a_dead_lettered_message_shows_a_failed_span_and_its_dead_letter(settings, launch, spans, client):
    """Invalid JSON on the events subject: the reviewer's `process` span fails with the reason and
    holds a `dead-letter` span (error type, reason), under which the record is published."""
    await asyncio.to_thread(launch, settings, ["security"])
    await client.js.publish(settings.subjects.release_proposed, b"{not json", headers={"Nats-Msg-Id": "bad-1"})
    ns = settings.namespace

    async def dead_letter_spans():  # the process span ends last, after the message is terminated
        found = spans.of_service("security")
        names = {s.name for s in found}
        return found if {f"process {ns}.events.release.proposed", "dead-letter"} <= names else None

    found = await eventually(dead_letter_spans, timeout=10)
    assert found, tree(spans.of_service("security"))
    processed = one(found, service="security", name=f"process {ns}.events.release.proposed")
    letter = one(found, service="security", name="dead-letter")
    record_sent = one(found, service="security", name=f"send {ns}.deadletter.*")
    assert processed.status == "STATUS_CODE_ERROR" and "Invalid JSON" in processed.status_message
    assert processed.attributes["messaging.message.id"] == "bad-1"
    assert letter.parent_id == processed.span_id and record_sent.parent_id == letter.span_id
    assert letter.attributes["error.type"] == "invalid"
    assert "Invalid JSON" in letter.attributes["mesh.dead_letter.reason"]


async def test_a_proposal_posted_to_the_gateway_is_one_trace_from_the_http_request_to_the_outcome(
    settings, launch, spans
):
    """A POST carrying the caller's `traceparent` is a SERVER span of the gateway under the caller's
    span, named after its route; the gateway's publish is its child, and the reviews and the
    outcome follow in the same trace, which the outcome records."""
    import httpx

    from services.gateway.api_keys import issue_key

    key = issue_key(settings.api_keys_path, "ci")
    mesh_ = await asyncio.to_thread(launch, settings, ["security", "compliance", "coordinator", "gateway"])
    gateway = next(s.url for s in mesh_.services if s.name == "gateway")
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    body = sample("release_clean", release_id="rel-gw-trace").model_dump_json()
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{gateway}/v1/events/release.proposed?wait=20",
            content=body,
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                "traceparent": f"00-{trace_id}-{caller_span}-01",
            },
        )
    assert response.status_code == 200, response.text
    assert response.json()["outcome"]["trace_id"] == trace_id
    ns = settings.namespace

    async def complete():
        found = spans.of_trace(trace_id)
        names = {(s.service, s.name) for s in found}
        wanted = {("gateway", "POST /v1/events/{event_type}"), ("coordinator", f"send {ns}.outcomes.release.*.*")}
        return found if wanted <= names else None

    found = await eventually(complete, timeout=10)
    assert found, tree(spans.of_trace(trace_id))
    served = one(found, service="gateway", name="POST /v1/events/{event_type}")
    assert served.kind == "SPAN_KIND_SERVER" and served.parent_id == caller_span
    assert served.attributes["http.response.status_code"] == 200
    assert served.attributes["http.route"] == "/v1/events/{event_type}"
    sent = one(found, service="gateway", name=f"send {ns}.events.release.proposed")
    assert sent.parent_id == served.span_id
    assert {s.service for s in found} >= {"gateway", "security", "compliance", "coordinator"}
    probes = [s for s in spans.of_service("gateway") if s.attributes.get("url.path") in ("/healthz", "/readyz")]
    assert probes == []  # `launch` probed /readyz until ready: never a span
