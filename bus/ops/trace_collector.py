"""`mesh up`'s trace collection: the OTLP receiver in front, the trace store behind, and a
bounded queue between them, so a receiver thread never waits on NATS.

    services --OTLP/HTTP--> OtlpReceiver (threads) --queue--> TraceStore (asyncio thread) --> JetStream

The receiver answers as soon as an export is queued. When MESH_TRACES_QUEUE exports are
waiting (NATS slow, or not connected yet) it answers 503 instead, and the exporters send the
batch again after a backoff: nothing is lost until their own retry budget runs out.

`mesh up` runs it in its own process (`start`, then `connect` once the mesh's NATS is up);
`mesh bench` runs it as a process of its own (`python -m bus.ops.trace_collector --port N`),
so that the driver measuring the mesh shares no interpreter with it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from collections import Counter
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bus.connect import connect
from bus.ops.otlp_receiver import ExportRefused, OtlpReceiver
from bus.ops.settings import MeshSettings
from bus.ops.trace_store import TraceStore

WORKERS = 4  # exports stored at once: each publishes its messages together and waits for the PubAcks


class TraceCollector:
    """`TraceCollector(settings).start()` receives; `.connect(settings)` starts storing."""

    def __init__(self, settings: MeshSettings, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.receiver = OtlpReceiver(self._on_export, host=host, port=port, raw=True)
        self.limit = settings.traces_queue
        self.counts: Counter[str] = Counter()  # exports, spans, refused, failed
        self.last_error = ""
        self._pending = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue[ExportTraceServiceRequest] = asyncio.Queue()
        self._thread = threading.Thread(target=self._loop.run_forever, name="trace-store", daemon=True)
        self._workers: list[asyncio.Task] = []
        self._nc = None

    @property
    def endpoint(self) -> str:
        """What the services' OTEL_EXPORTER_OTLP_ENDPOINT is set to."""
        return self.receiver.endpoint

    def start(self) -> TraceCollector:
        """Receive and queue exports; they are stored once `connect` has run."""
        self._thread.start()
        self.receiver.start()
        return self

    def connect(self, settings: MeshSettings, *, timeout: float = 30.0) -> None:
        """Connect to NATS with `settings` (the operator's identity), create or correct the
        traces stream, and start storing what is queued."""
        asyncio.run_coroutine_threadsafe(self._connect(settings), self._loop).result(timeout)

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop receiving, store what is queued (for up to `timeout` seconds), disconnect."""
        self.receiver.stop()
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._close(timeout), self._loop).result(timeout + 5)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(5)

    def summary(self) -> str:
        c = self.counts
        line = f"{c['spans']} spans stored from {c['exports']} exports"
        if c["refused"] or c["failed"]:
            line += f"; {c['refused']} exports refused while busy (retried by the exporters), {c['failed']} failed"
        return line + (f" (last error: {self.last_error})" if self.last_error else "")

    # --- the receiver's threads ---

    def _on_export(self, export: ExportTraceServiceRequest) -> None:
        with self._lock:
            if self._pending >= self.limit:
                self.counts["refused"] += 1
                raise ExportRefused("the trace store is busy; send again later")
            self._pending += 1
        self._loop.call_soon_threadsafe(self._queue.put_nowait, export)

    # --- the store's event loop ---

    async def _connect(self, settings: MeshSettings) -> None:
        self._nc = await connect(settings, name="mesh-trace-store")
        store = TraceStore(self._nc.jetstream(), settings)
        await store.ensure_stream()
        self._workers = [asyncio.create_task(self._work(store)) for _ in range(WORKERS)]

    async def _work(self, store: TraceStore) -> None:
        while True:
            export = await self._queue.get()
            try:
                spans = await store.store(export)  # not `+= await`: that reads the count before waiting
                self.counts["spans"] += spans
                self.counts["exports"] += 1
            except Exception as exc:  # noqa: BLE001 - one lost batch must not stop the store
                self.counts["failed"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                with self._lock:
                    self._pending -= 1
                self._queue.task_done()

    async def _close(self, timeout: float) -> None:
        if self._workers:
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except TimeoutError:
                pass
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._nc is not None:
            try:
                await self._nc.drain()
            except Exception:  # noqa: BLE001 - NATS already gone: nothing left to flush
                await self._nc.close()


@dataclass
class LocalTraces:
    """What `mesh up` does with traces: the collector it runs (if any), what it adds to the
    services' environment, and where the spans go, in words."""

    collector: TraceCollector | None
    env: dict[str, str]
    where: str

    @classmethod
    def plan(cls, settings: MeshSettings, *, enabled: bool, port: int = 0) -> LocalTraces:
        """Off (`--no-traces`); to your OTEL_EXPORTER_OTLP_ENDPOINT (no store of ours); or to a
        collector of ours, receiving from now on (on `port` if it is free)."""
        if not enabled:
            return cls(None, {"OTEL_SDK_DISABLED": "true"}, "off (--no-traces)")
        if settings.otlp_endpoint:
            return cls(
                None,
                {},
                f"exported to {settings.otlp_endpoint} (OTEL_EXPORTER_OTLP_ENDPOINT); "
                "`mesh trace` reads Jaeger when MESH_JAEGER_URL is set",
            )
        try:
            collector = TraceCollector(settings, port=port).start()
        except OSError:  # the port is taken: any other will do, the services are told which
            collector = TraceCollector(settings).start()
        return cls(collector, {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}, "")

    def connect(self, settings: MeshSettings) -> None:
        """Start storing, as the mesh's operator, once its NATS is up."""
        if self.collector is None:
            return
        age = f"{settings.traces_max_age_seconds / 3600:g} h"
        stream = settings.subjects.traces_stream
        try:
            self.collector.connect(settings)
        except Exception as exc:  # noqa: BLE001 - the mesh runs on without its trace store
            self.collector.stop(timeout=0)
            self.collector = None
            self.where = f"[red]not stored[/]: the trace store could not start ({type(exc).__name__}: {exc})"
            return
        self.where = (
            f"received at {self.collector.endpoint}, kept {age} in stream {stream}; see one with `mesh trace RELEASE`"
        )

    def stop(self) -> str | None:
        """Store what is still queued and stop; returns what was stored, in words."""
        if self.collector is None:
            return None
        self.collector.stop()
        return self.collector.summary()


def main(argv: list[str] | None = None) -> None:
    """Run a collector until SIGTERM or SIGINT, with the settings (and identity) of MESH_*."""
    parser = argparse.ArgumentParser(description="OTLP/HTTP receiver storing spans in the mesh's traces stream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    settings = MeshSettings()
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    collector = TraceCollector(settings, host=args.host, port=args.port).start()
    try:
        collector.connect(settings)
        print(f"ready {collector.endpoint}", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        collector.stop()
        print(f"stopped: {collector.summary()}", flush=True)


if __name__ == "__main__":
    main()
