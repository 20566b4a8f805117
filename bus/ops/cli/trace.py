"""`mesh trace RELEASE`: how one release went through the mesh, as a tree of spans.

From the mesh's own trace store (the `MESH_TRACES` stream `mesh up` keeps), or from Jaeger's
query API v3 when MESH_JAEGER_URL is set; both give OTLP JSON, drawn by bus/ops/trace_render.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from bus.connect import connect
from bus.errors import MeshError
from bus.ops.settings import MeshSettings
from bus.ops.trace_render import as_json, render, spans_of
from bus.ops.trace_store import TraceRef, TraceStore, pick_revision


def register(app: typer.Typer) -> None:
    app.command()(trace)


def trace(
    ctx: typer.Context,
    release: Annotated[str, typer.Argument(help="The release id (`release_id` of its proposal).")],
    revision: Annotated[
        str | None, typer.Option(help="Which revision: its content digest, or the start of it. Default: the latest.")
    ] = None,
    since_hours: Annotated[
        float, typer.Option(min=0.01, help="With MESH_JAEGER_URL: how far back Jaeger is searched.")
    ] = 24.0,
    as_json_: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show how a release went through the mesh: its trace as a tree of spans.

    Each line: service, operation, start (ms after the trace began), duration, status, and
    what matters (verdict, outcome, model and tokens, subject). Spans come from the trace store
    `mesh up` keeps (recent spans, MESH_TRACES_MAX_AGE_SECONDS), or from Jaeger when
    MESH_JAEGER_URL names its query service. A span whose parent was not exported (yet) is
    shown at the top, marked `⋯`.

    Example: `mesh trace rel-42`, `mesh trace rel-42 --revision 9f86d081 --json`
    """
    settings: MeshSettings = ctx.obj
    if settings.jaeger_url:
        source, found = "jaeger", _from_jaeger(settings, release, revision, since_hours * 3600)
    else:
        source, found = "store", asyncio.run(_from_store(settings, release, revision))
    every, refs, documents = found
    digest = refs[0].content_digest
    if as_json_:
        traces = [as_json(spans_of(doc)) for doc in documents.values()]
        body = {"release_id": release, "revision": digest, "source": source, "traces": traces}
        typer.echo(json.dumps(body, indent=2))
        return
    for ref in refs:
        spans = spans_of(documents[ref.trace_id])
        if not spans:
            typer.echo(f"trace {ref.trace_id}: no spans stored any more (older than the store keeps)\n")
            continue
        typer.echo("\n".join(render(spans, release_id=release, revision=_short(digest))) + "\n")
    if len(refs) > 1:
        typer.echo(
            f"{len(refs)} traces for this revision: usually its proposal carried no trace context (published "
            "without tracing), so each service that took it began its own"
        )
    others = {r.content_digest: r for r in sorted(every, key=lambda r: r.start_unix_nano) if r.content_digest != digest}
    if others:
        listed = ", ".join(f"{_short(d)} ({_when(r)})" for d, r in others.items())
        typer.echo(f"other revisions of {release}: {listed}; show one with --revision")


Found = tuple[list[TraceRef], list[TraceRef], dict[str, dict[str, Any]]]  # every ref, the chosen, their spans


def _choose(all_refs: list[TraceRef], release: str, revision: str | None, where: str) -> list[TraceRef]:
    try:
        _, refs = pick_revision(all_refs, revision)
    except ValueError as exc:
        raise MeshError(f"{exc}; give more of the digest") from None
    if not all_refs:
        raise MeshError(f"no trace of release {release!r} in {where}")
    if not refs:
        known = ", ".join(sorted({_short(r.content_digest) for r in all_refs}))
        raise MeshError(f"release {release!r} has no revision {revision!r} in {where}; it has {known}")
    return refs


async def _from_store(settings: MeshSettings, release: str, revision: str | None) -> Found:
    nc = await connect(settings, name="mesh-trace")
    try:
        store = TraceStore(nc.jetstream(timeout=settings.publish_timeout_seconds), settings)
        stream = settings.subjects.traces_stream
        if not await store.exists():
            raise MeshError(
                f"no trace store on this mesh (stream {stream} is missing): `mesh up` keeps one unless started "
                "with --no-traces or OTEL_EXPORTER_OTLP_ENDPOINT; set MESH_JAEGER_URL to read Jaeger instead"
            )
        age = f"{settings.traces_max_age_seconds / 3600:g} h"
        every = await store.refs(release)
        refs = _choose(every, release, revision, f"{stream} (spans of the last {age})")
        return every, refs, {ref.trace_id: await store.trace(ref.trace_id) for ref in refs}
    finally:
        await nc.drain()


def _from_jaeger(settings: MeshSettings, release: str, revision: str | None, lookback: float) -> Found:
    from bus.ops.jaeger import JaegerQuery
    from services.index import SERVICES

    jaeger = JaegerQuery(settings.jaeger_url, services=SERVICES, lookback_seconds=lookback)
    hours = f"{lookback / 3600:g} h"
    every = jaeger.refs(release)
    refs = _choose(every, release, revision, f"Jaeger at {jaeger.url} (last {hours})")
    return every, refs, {ref.trace_id: jaeger.trace(ref.trace_id) for ref in refs}


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] or "-"


def _when(ref: TraceRef) -> str:
    return datetime.fromtimestamp(ref.start_unix_nano / 1e9, UTC).isoformat(timespec="seconds")
