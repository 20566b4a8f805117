"""`mesh bench daemon`: what a daemon agent's checkpoints cost, and its takeover gap."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Annotated

import typer
from rich.console import Console

from bus.errors import MeshError
from bus.ops.settings import MeshSettings

console = Console(soft_wrap=True)


def register(bench: typer.Typer) -> None:
    """Add `daemon` to the `mesh bench` command group."""
    bench.command("daemon")(bench_daemon)


def bench_daemon(
    ctx: typer.Context,
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, help="Events replayed per checkpoint setting.")
    ] = 5000,
    every: Annotated[
        list[int] | None, typer.Option("--every", min=1, help="Checkpoint every N events (repeat; default 1 and 100).")
    ] = None,
    takeovers: Annotated[int, typer.Option(min=0, help="Active instances killed, one after another.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
) -> None:
    """Measure the toy daemon agent (bus/ops/bench/tally.py) on an embedded nats-server.

    Throughput: `--events` events already in the stream, replayed by one instance that
    checkpoints every event, then (same server, a fresh namespace) every 100 events: events/s.
    Takeover: two instances with events flowing (one every 20 ms); SIGKILL the active one and time
    until the standby says it is active and until it has applied an event sent after the kill;
    restart the killed one as the next standby; `--takeovers` times. Prints medians and p99s.
    The lease is MESH_DAEMON_LEASE_SECONDS (default 3 s). Logs in `.mesh/bench-daemon`.

    Example: `mesh bench daemon` (about 2 minutes), or `mesh bench daemon -n 1000 --takeovers 3`
    """
    from bus.ops.bench.daemon import Takeovers, measure_takeovers, measure_throughput
    from bus.ops.bench.tally import TallySettings
    from bus.ops.embedded import EmbeddedNats

    settings: MeshSettings = ctx.obj
    home = settings.home / "bench-daemon"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings_every = every or [1, 100]
    say = (lambda *a, **k: None) if as_json else console.print

    async def run() -> dict:
        async with EmbeddedNats(store_dir=home / "nats") as server:
            base = TallySettings(**{**settings.model_dump(), "nats_url": server.url, "nats_credentials": None})
            say(f"[bold]mesh bench daemon[/]: nats-server at {server.url}; logs in {home}")
            rows = []
            for n in settings_every:
                row = await measure_throughput(base, events=events, checkpoint_every=n, folder=home)
                say(
                    f"checkpoint every {n:>5} event(s): {row.per_second:9.0f} events/s ({events} in {row.seconds:.2f} s)"
                )
                rows.append(
                    {"checkpoint_every": n, "events": events, "seconds": row.seconds, "per_second": row.per_second}
                )
            figures: dict = {"throughput": rows}
            if takeovers:
                say(f"takeovers (lease {base.daemon_lease_seconds} s), kill -> active / -> applying:")
                found = await measure_takeovers(
                    base,
                    takeovers=takeovers,
                    folder=home,
                    on_one=lambda a, b: say(f"  {a:6.3f} s / {b:6.3f} s"),
                )
                figures["takeover"] = {
                    "lease_seconds": found.lease_seconds,
                    "to_active": Takeovers.summary(found.to_active),
                    "to_applied": Takeovers.summary(found.to_applied),
                }
                for name in ("to_active", "to_applied"):
                    summary = figures["takeover"][name]
                    say(
                        f"{name.replace('_', ' '):>10}: median {summary['median']:.3f} s, p99 {summary['p99']:.3f} s, "
                        f"max {summary['max']:.3f} s over {summary['n']}"
                    )
            return figures

    try:
        figures = asyncio.run(run())
    except (OSError, RuntimeError) as exc:
        raise MeshError(f"the daemon benchmark could not run: {exc}") from exc
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
