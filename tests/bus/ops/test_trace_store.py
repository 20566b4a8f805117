"""`mesh trace` end to end: spans from the OpenTelemetry SDK reach the OTLP receiver, the trace
store keeps them in JetStream, and `mesh trace RELEASE` draws the tree — from the store, and
from a Jaeger API v3 (a real local HTTP server) holding the same spans, identically."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import nats
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bus.ops.otlp_receiver import OtlpReceiver
from bus.ops.trace_collector import LocalTraces, TraceCollector
from bus.ops.trace_render import spans_of
from bus.ops.trace_store import TraceRef, pick_revision
from tests.bus.ops.test_cli import mesh

DIGESTS = ("sha256:" + "1" * 64, "sha256:" + "2" * 64)  # two revisions of rel-42, the second the latest


# --- a Jaeger query API v3 that holds whatever its OTLP receiver got ---------------------------


class FakeJaeger:
    """Jaeger's /api/v3 shapes over the exports its own OTLP receiver took in."""

    def __init__(self) -> None:
        self.exports: list[dict] = []
        self.receiver = OtlpReceiver(self.exports.append)
        self.searches: list[dict[str, list[str]]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _spans(self, keep) -> dict:
        """The exports cut down to the spans `keep(span)` accepts, resources and scopes kept."""
        resources = []
        for export in self.exports:
            for resource in export["resourceSpans"]:
                scopes = [
                    {**scope, "spans": [s for s in scope["spans"] if keep(s)]} for scope in resource["scopeSpans"]
                ]
                if scopes := [scope for scope in scopes if scope["spans"]]:
                    resources.append({**resource, "scopeSpans": scopes})
        return {"resourceSpans": resources}

    def _handler(self):
        jaeger = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if url.path == "/api/v3/services":
                    names = {s.service for e in jaeger.exports for s in spans_of(e)}
                    return self._json(200, {"services": sorted(names)})
                if url.path == "/api/v3/traces":
                    jaeger.searches.append(query)
                    if "query.start_time_min" not in query or "query.start_time_max" not in query:
                        return self._json(400, {"error": {"httpCode": 400, "message": "time range required"}})
                    wanted = json.loads(query["query.attributes"][0])
                    service = query["query.service_name"][0]
                    hits = {
                        s.trace_id
                        for e in jaeger.exports
                        for s in spans_of(e)
                        if s.service == service and all(s.attributes.get(k) == v for k, v in wanted.items())
                    }
                    return self._result(jaeger._spans(lambda span: span["traceId"] in hits))
                if url.path.startswith("/api/v3/traces/"):
                    trace_id = url.path.rsplit("/", 1)[1]
                    return self._result(jaeger._spans(lambda span: span["traceId"] == trace_id))
                return self._json(404, {"error": {"httpCode": 404, "message": "not found"}})

            def _result(self, document: dict) -> None:
                if not document["resourceSpans"]:
                    return self._json(404, {"error": {"httpCode": 404, "message": "No traces found"}})
                return self._json(200, {"result": document})

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        return Handler

    def __enter__(self) -> FakeJaeger:
        self.receiver.start()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.receiver.stop()


# --- spans as the mesh's services would export them ---------------------------------------------


@contextmanager
def providers(*endpoints: str) -> Iterator[dict[str, TracerProvider]]:
    """A tracer provider per service, each exporting every span to every endpoint as it ends;
    and the CLI's, which exports nowhere (its spans are the missing parents)."""
    made = {}
    for service in ("coordinator", "security", "compliance"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        for endpoint in endpoints:
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
        made[service] = provider
    made["cli"] = TracerProvider(resource=Resource.create({"service.name": "mesh-cli"}))
    try:
        yield made
    finally:
        for provider in made.values():
            provider.shutdown()


def release_flow(tracers: dict[str, TracerProvider], release: str, digest: str) -> None:
    """What a proposal does: published by the CLI, handled by the coordinator and both
    reviewers, each review handled by the coordinator, which decides."""
    about = {"mesh.release_id": release, "mesh.content_digest": digest}
    tracer = {name: provider.get_tracer("agent-mesh") for name, provider in tracers.items()}
    with tracer["cli"].start_as_current_span("publish mesh.events.release.proposed") as published:
        parent = trace.set_span_in_context(published)
    with (
        tracer["coordinator"].start_as_current_span(
            "receive mesh.events.release.proposed",
            context=parent,
            attributes={
                **about,
                "messaging.system": "nats",
                "messaging.destination.name": "mesh.events.release.proposed",
            },
        ),
        tracer["coordinator"].start_as_current_span("kv.create round", attributes=about),
    ):
        time.sleep(0.002)
    for reviewer in ("security", "compliance"):
        with (
            tracer[reviewer].start_as_current_span(
                "receive mesh.events.release.proposed", context=parent, attributes={**about, "mesh.verdict": "approve"}
            ),
            tracer[reviewer].start_as_current_span(f"publish mesh.reviews.release.{reviewer}") as review,
        ):
            review_context = trace.set_span_in_context(review)
        with tracer["coordinator"].start_as_current_span(
            f"receive mesh.reviews.release.{reviewer}", context=review_context, attributes=about
        ) as decided:
            if reviewer == "compliance":
                decided.set_attribute("mesh.outcome", "approved")
                outcome = f"mesh.outcomes.release.{release}.{digest[7:19]}"
                with tracer["coordinator"].start_as_current_span(
                    "send mesh.outcomes.release.*.*", attributes={**about, "messaging.destination.name": outcome}
                ):
                    pass


SPANS_PER_FLOW = 9  # exported ones: the CLI's publish is not


async def _until_stored(collector: TraceCollector, spans: int, timeout: float = 15.0) -> None:
    give_up = time.monotonic() + timeout
    while collector.counts["spans"] < spans:
        assert time.monotonic() < give_up, f"stored {collector.summary()}, expected {spans} spans"
        await asyncio.sleep(0.05)


def _cli(settings, tmp_path, *args: str, **env: str):
    return mesh("trace", *args, settings=settings, MESH_HOME=str(tmp_path / "cli-home"), COLUMNS="200", **env)


# --- the tests ------------------------------------------------------------------------------------


async def test_mesh_trace_draws_the_same_tree_from_the_store_and_from_jaeger(make_settings, tmp_path):
    """Two revisions of rel-42 exported by three services reach the store and a Jaeger; `mesh
    trace rel-42` shows the latest revision's tree (parents above children, the CLI's missing
    parent marked) and names the other revision, and with MESH_JAEGER_URL prints the same."""
    settings = make_settings(traces_max_age_seconds=3600, traces_max_bytes=64 * 2**20)
    collector = TraceCollector(settings).start()
    try:
        await asyncio.to_thread(collector.connect, settings)
        with FakeJaeger() as jaeger, providers(collector.endpoint, jaeger.receiver.endpoint) as tracers:
            for digest in DIGESTS:
                await asyncio.to_thread(release_flow, tracers, "rel-42", digest)
            await asyncio.to_thread(release_flow, tracers, "rel-7", DIGESTS[0])  # another release, not shown
            await _until_stored(collector, 3 * SPANS_PER_FLOW)

            from_store = await asyncio.to_thread(_cli, settings, tmp_path, "rel-42")
            from_jaeger = await asyncio.to_thread(_cli, settings, tmp_path, "rel-42", MESH_JAEGER_URL=jaeger.url)
    finally:
        collector.stop()

    assert from_store.returncode == 0, from_store.stderr
    lines = from_store.stdout.splitlines()
    assert lines[0].startswith("trace ") and "release rel-42  revision 222222222222  9 spans" in lines[0]
    tree = [" ".join(line.split()[:3]) for line in lines[1:10]]
    assert tree == [
        "⋯ coordinator receive",
        "└─ coordinator kv.create",
        "⋯ security receive",
        "└─ security publish",
        "└─ coordinator receive",
        "⋯ compliance receive",
        "└─ compliance publish",
        "└─ coordinator receive",
        "└─ coordinator send",
    ]
    assert "verdict=approve" in lines[3] and "outcome=approved" in lines[8]
    assert "dest=mesh.outcomes.release.rel-42.222222222222" in lines[9]  # not in its name, so shown
    assert "dest=" not in lines[1] and "rel-7" not in from_store.stdout
    assert "parent span not in this trace" in from_store.stdout
    assert "other revisions of rel-42: 111111111111" in from_store.stdout

    assert from_jaeger.returncode == 0, from_jaeger.stderr
    assert from_jaeger.stdout == from_store.stdout
    search = jaeger.searches[0]
    assert json.loads(search["query.attributes"][0]) == {"mesh.release_id": "rel-42"}


async def test_a_revision_is_chosen_by_a_digest_prefix_and_json_is_available(make_settings, tmp_path):
    """`--revision 1111` picks the older revision; `--json` gives the same tree for machines."""
    settings = make_settings()
    collector = TraceCollector(settings).start()
    try:
        await asyncio.to_thread(collector.connect, settings)
        with providers(collector.endpoint) as tracers:
            for digest in DIGESTS:
                await asyncio.to_thread(release_flow, tracers, "rel-42", digest)
            await _until_stored(collector, 2 * SPANS_PER_FLOW)
        shown = await asyncio.to_thread(_cli, settings, tmp_path, "rel-42", "--revision", "1111", "--json")
    finally:
        collector.stop()

    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["revision"] == DIGESTS[0] and body["source"] == "store"
    (only,) = body["traces"]
    assert len(only["spans"]) == SPANS_PER_FLOW
    assert [s["depth"] for s in only["spans"]] == [0, 1, 0, 1, 2, 0, 1, 2, 3]
    assert all(s["attributes"].get("mesh.content_digest") in (DIGESTS[0], None) for s in only["spans"])


async def test_the_index_holds_one_entry_per_revision_and_trace_and_the_stream_has_limits(make_settings):
    """Every span of a flow names its release, yet the index has one entry per (revision,
    trace); the stream keeps spans for MESH_TRACES_MAX_AGE_SECONDS and MESH_TRACES_MAX_BYTES,
    dropping the oldest, and a store started with other limits corrects them."""
    settings = make_settings(traces_max_age_seconds=7200, traces_max_bytes=32 * 2**20)
    collector = TraceCollector(settings).start()
    try:
        await asyncio.to_thread(collector.connect, settings)
        with providers(collector.endpoint) as tracers:
            for digest in DIGESTS:
                await asyncio.to_thread(release_flow, tracers, "rel-42", digest)
            await _until_stored(collector, 2 * SPANS_PER_FLOW)
    finally:
        collector.stop()

    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        s = settings.subjects
        info = await js.stream_info(s.traces_stream, subjects_filter=s.traces)
        assert info.state.subjects[s.trace_index("rel-42")] == 2
        assert (info.config.max_age, info.config.max_bytes) == (7200, 32 * 2**20)
        assert info.config.discard == "old" and info.config.retention == "limits"

        longer = settings.model_copy(update={"traces_max_age_seconds": 86400.0})
        collector = TraceCollector(longer).start()
        await asyncio.to_thread(collector.connect, longer)
        collector.stop()
        assert (await js.stream_info(s.traces_stream)).config.max_age == 86400
    finally:
        await nc.close()


async def test_a_full_queue_answers_503_and_the_exporter_s_retry_is_stored(make_settings):
    """While the store cannot keep up (here: not connected yet) the receiver turns exports away
    with 503 and Retry-After; once it stores again, what was queued is stored."""
    settings = make_settings(traces_queue=1)
    collector = TraceCollector(settings).start()
    try:
        body = {"resourceSpans": []}
        async with httpx.AsyncClient() as client:
            first = await client.post(f"{collector.endpoint}/v1/traces", json=body)
            second = await client.post(f"{collector.endpoint}/v1/traces", json=body)
        assert first.status_code == 200
        assert second.status_code == 503 and second.headers["Retry-After"] == "1"
        await asyncio.to_thread(collector.connect, settings)
        give_up = time.monotonic() + 10
        while collector.counts["exports"] < 1:
            assert time.monotonic() < give_up
            await asyncio.sleep(0.05)
        assert collector.counts["refused"] == 1
    finally:
        collector.stop()


@pytest.mark.parametrize("jaeger", [False, True], ids=["store", "jaeger"])
async def test_an_unknown_release_is_one_line_and_exit_1(make_settings, tmp_path, jaeger):
    """Nothing known about the release: one line on stderr, exit status 1."""
    settings = make_settings()
    collector = TraceCollector(settings).start()
    try:
        await asyncio.to_thread(collector.connect, settings)
        with FakeJaeger() as fake, providers(collector.endpoint, fake.receiver.endpoint) as tracers:
            await asyncio.to_thread(release_flow, tracers, "rel-42", DIGESTS[0])
            await _until_stored(collector, SPANS_PER_FLOW)
            env = {"MESH_JAEGER_URL": fake.url} if jaeger else {}
            result = await asyncio.to_thread(_cli, settings, tmp_path, "rel-404", **env)
    finally:
        collector.stop()

    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no trace of release 'rel-404' in ")


async def test_without_a_trace_store_mesh_trace_says_how_to_get_one(make_settings, tmp_path):
    """A mesh started with --no-traces has no traces stream: the error names the ways to get traces."""
    result = await asyncio.to_thread(_cli, make_settings(), tmp_path, "rel-42")

    assert result.returncode == 1
    assert "no trace store on this mesh" in result.stderr and "MESH_JAEGER_URL" in result.stderr


def test_mesh_up_runs_a_store_only_when_no_endpoint_is_named(make_settings):
    """`--no-traces` switches the SDK off; a user's OTEL_EXPORTER_OTLP_ENDPOINT gets the spans and
    no store runs; otherwise the services are pointed at a collector of ours, on another port
    when the one asked for is taken."""
    off = LocalTraces.plan(make_settings(otlp_endpoint=None), enabled=False)
    assert off.collector is None and off.env == {"OTEL_SDK_DISABLED": "true"}

    theirs = LocalTraces.plan(make_settings(otlp_endpoint="http://jaeger:4318"), enabled=True)
    assert theirs.collector is None and theirs.env == {} and "http://jaeger:4318" in theirs.where

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        ours = LocalTraces.plan(make_settings(otlp_endpoint=None), enabled=True, port=port)
    try:
        assert ours.env == {"OTEL_EXPORTER_OTLP_ENDPOINT": ours.collector.endpoint}
        assert not ours.collector.endpoint.endswith(f":{port}")
    finally:
        ours.stop()


def test_a_revision_is_the_latest_unless_a_digest_prefix_names_another():
    """Pure: the latest revision's traces by default; a prefix (with or without `sha256:`) picks
    one; a prefix that fits two is refused; one that fits none finds nothing."""
    refs = [
        TraceRef("rel-42", "sha256:aa11", "t1", 10),
        TraceRef("rel-42", "sha256:ab22", "t3", 30),
        TraceRef("rel-42", "sha256:ab22", "t2", 20),
    ]

    assert pick_revision(refs) == ("sha256:ab22", [refs[2], refs[1]])
    assert pick_revision(refs, "aa") == ("sha256:aa11", [refs[0]])
    assert pick_revision(refs, "sha256:ab2") == ("sha256:ab22", [refs[2], refs[1]])
    assert pick_revision(refs, "ff") == ("", [])
    with pytest.raises(ValueError, match="fits 2 revisions"):
        pick_revision(refs, "a")
