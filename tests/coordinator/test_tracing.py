"""The coordinator's spans against a real nats-server: a round's deadline, fired by the server,
is handled in the trace of the proposal that scheduled it, and the outcome records that trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nats.js.errors import NotFoundError
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus.client import MeshClient
from bus.ops.launcher import provision_mesh
from bus.tracing import TracingTelemetry
from contracts.deadlines import rfc3339_ceil
from contracts.releases import ReleaseProposed
from coordinator.service import build_coordinator
from tests.bus.test_tracing import ended
from tests.e2e.support import eventually

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def last_msg(client: MeshClient, stream: str, subject: str):
    try:
        return await client.js.get_last_msg(stream, subject)
    except NotFoundError:
        return None


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield TracingTelemetry(provider), exporter
    provider.shutdown()


async def test_the_server_keeps_a_schedules_headers_on_the_message_it_fires(make_settings):
    """A `Nats-Schedule: @at` message's own headers (`traceparent`, `tracestate`) arrive on the
    fired copy unchanged, next to the server's `Nats-Scheduler`: the deadline's trace context
    needs no copy in the payload."""
    settings = make_settings()
    s = settings.subjects
    await provision_mesh(settings, names=["coordinator"])
    at = rfc3339_ceil(datetime.now(UTC) + timedelta(seconds=1))
    async with await MeshClient.connect(settings) as client:
        await client.js.publish(
            s.deadline_schedule("rel-h", "d1"),
            b"{}",
            headers={
                "Nats-Schedule": f"@at {at}",
                "Nats-Schedule-Target": s.deadline_fired("rel-h", "d1"),
                "traceparent": TRACEPARENT,
                "tracestate": "mesh=1",
            },
        )
        msg = await eventually(lambda: last_msg(client, s.deadlines_stream, s.deadline_fired("rel-h", "d1")))

    assert msg.headers["traceparent"] == TRACEPARENT
    assert msg.headers["tracestate"] == "mesh=1"
    assert msg.headers["Nats-Scheduler"] == s.deadline_schedule("rel-h", "d1")


async def test_a_fired_deadline_is_handled_in_the_trace_of_the_round_that_scheduled_it(make_settings, traced):
    """No reviewer answers: the deadline's `process` span is a child of the `send` that scheduled
    it (under the proposal's `process`), shows `mesh.deadline.fired` with the fallbacks applied,
    changes the round by compare-and-set (a `kv.update` event on that span, like the opening on the
    proposal's), and publishes the outcome, whose `trace_id` is the proposal's trace."""
    telemetry, exporter = traced
    settings = make_settings(
        reviewers="security,compliance", reviewer_discovery=False, deadline_seconds=1, fallbacks="security=block"
    )
    s = settings.subjects
    proposal = ReleaseProposed(release_id="rel-dl", service="svc", version="1.0.0")
    await provision_mesh(settings, names=["coordinator"])
    async with (
        build_coordinator(settings, telemetry=telemetry).running(),
        await MeshClient.connect(settings, telemetry=telemetry) as client,
    ):
        await client.propose(proposal)
        outcome = await client.wait_for_outcome(proposal, timeout=15)
        await ended(exporter, f"process {s.namespace}.deadlines.fired.*.*")  # it ends after its ack

    spans = exporter.get_finished_spans()
    by_name = {span.name: span for span in spans}
    sent = by_name[f"send {s.release_proposed}"]
    opened = by_name[f"process {s.release_proposed}"]
    scheduled = by_name[f"send {s.namespace}.deadlines.schedule.*.*"]
    fired = by_name[f"process {s.namespace}.deadlines.fired.*.*"]
    published = by_name[f"send {s.namespace}.outcomes.release.*.*"]
    assert not [span for span in spans if span.name.startswith("kv.update")]  # events, not spans

    assert outcome is not None and outcome.trace_id == trace.format_trace_id(sent.context.trace_id)
    assert len({span.context.trace_id for span in spans}) == 1
    assert opened.parent.span_id == sent.context.span_id
    assert scheduled.parent.span_id == opened.context.span_id
    assert fired.parent.span_id == scheduled.context.span_id
    assert published.parent.span_id == fired.context.span_id
    assert fired.attributes["mesh.release_id"] == "rel-dl"

    [event] = [e for e in fired.events if e.name == "mesh.deadline.fired"]
    assert event.attributes["mesh.deadline.decided"] is True
    assert sorted(event.attributes["mesh.missing"]) == ["compliance", "security"]
    assert "security=block" in event.attributes["mesh.fallbacks_applied"]

    def kv_updates(span) -> list:
        return [e for e in span.events if e.name == f"kv.update {s.rounds_bucket}"]

    deciding = [e for e in kv_updates(fired) if e.attributes["mesh.round.decided"]]
    assert len(deciding) == 1 and deciding[0].attributes["mesh.kv.attempts"] >= 1
    assert deciding[0].attributes["mesh.kv.seconds"] >= 0
    [opening] = kv_updates(opened)
    assert opening.attributes["mesh.kv.changed"] is True and opening.attributes["mesh.round.state"] == "open"
