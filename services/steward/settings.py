"""The steward's settings: how often its state is checkpointed, and how much of its history one
search reads or returns. Read from the same `MESH_*` variables as the bus's.

The bounds of its working state are not settings: they are constants of services/steward/state.py,
where a test proves the largest state they allow fits one KV value.
"""

from __future__ import annotations

from pydantic import Field

from bus.settings import BusSettings


class StewardSettings(BusSettings):
    """The bus's settings plus the steward's."""

    steward_checkpoint_every: int = Field(
        default=1,
        ge=1,
        description="Checkpoint the state after this many events (1: every event; more: fewer KV writes, "
        "and a restart replays up to that many events).",
    )
    steward_checkpoint_seconds: float | None = Field(
        default=None, gt=0, description="Also checkpoint at least this often while events arrive (None: by count only)."
    )
    steward_history_max_scan: int = Field(
        default=20_000,
        ge=100,
        description="Most history records one search reads (a service keeps at most 5000 per kind, so the "
        "default reads any service's whole history); a search that stops here says `truncated`.",
    )
    steward_history_max_limit: int = Field(
        default=200, ge=1, le=1000, description="Most records one `GET /services/{name}/history` returns."
    )
