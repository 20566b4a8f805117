"""A daemon agent's Prometheus families, in its agent's registry (served at `GET /metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CHECKPOINT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
TAKEOVER_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class DaemonMetrics:
    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        registry = registry or CollectorRegistry()

        def family(kind: type, name: str, doc: str, *labels: str, **options) -> object:
            return kind(name, doc, ["service", *labels], registry=registry, **options)

        self._active = family(Gauge, "mesh_daemon_active", "1 on the instance that applies events, 0 on a standby.")
        self._events = family(Counter, "mesh_daemon_events", "Events read, by what became of them.", "stream", "result")
        self._checkpoints = family(Counter, "mesh_daemon_checkpoints", "Checkpoint writes, by result.", "result")
        self._checkpoint_seconds = family(
            Histogram,
            "mesh_daemon_checkpoint_duration_seconds",
            "Time to write one checkpoint (all its chunks and the header).",
            buckets=CHECKPOINT_BUCKETS,
        )
        self._checkpoint_bytes = family(Gauge, "mesh_daemon_checkpoint_bytes", "Size of the last checkpoint's body.")
        self._checkpoint_chunks = family(
            Gauge, "mesh_daemon_checkpoint_chunks", "Chunks of the last checkpoint (0: it fit in one value)."
        )
        self._effects = family(Counter, "mesh_daemon_effects", "Effects, by how they left.", "result")
        self._takeovers = family(Counter, "mesh_daemon_takeovers", "Times this instance became the active one.")
        self._restore_seconds = family(
            Histogram,
            "mesh_daemon_restore_duration_seconds",
            "From winning the lease to applying events: reading and claiming the checkpoint.",
            buckets=TAKEOVER_BUCKETS,
        )
        self._step_downs = family(
            Counter, "mesh_daemon_step_downs", "Times the active instance stopped applying, by why.", "reason"
        )

    def active(self, is_active: bool) -> None:
        self._active.labels(self.service).set(1 if is_active else 0)

    def event(self, stream: str, result: str) -> None:
        """`result`: applied, invalid (did not validate: skipped) or failed (the applier raised: skipped)."""
        self._events.labels(self.service, stream, result).inc()

    def checkpoint(self, result: str, seconds: float = 0.0, size: int = 0, chunks: int = 0) -> None:
        """`result`: ok, fenced (another instance wrote since) or failed."""
        self._checkpoints.labels(self.service, result).inc()
        if result == "ok":
            self._checkpoint_seconds.labels(self.service).observe(seconds)
            self._checkpoint_bytes.labels(self.service).set(size)
            self._checkpoint_chunks.labels(self.service).set(chunks)

    def effects(self, result: str, n: int) -> None:
        """`result`: published, or already_published (found in the stream after a restore)."""
        self._effects.labels(self.service, result).inc(n)

    def took_over(self, seconds: float) -> None:
        self._takeovers.labels(self.service).inc()
        self._restore_seconds.labels(self.service).observe(seconds)

    def stepped_down(self, reason: str) -> None:
        """`reason`: lease (expired or taken), fenced, stopped, or error."""
        self._step_downs.labels(self.service, reason).inc()
