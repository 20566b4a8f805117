"""`mesh chaos`: run the mesh under SIGKILLs (or SIGSTOPs) and count what was lost, duplicated
or decided wrongly."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from bus.ops.arguments import positive
from bus.ops.chaos import FREEZE_TARGETS, KINDS, ChaosPlan, run_chaos
from bus.ops.settings import MeshSettings

MB = 1024 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SHOWN_WRONG = 10  # wrong outcomes named on stderr; the count is on the summary line


def register(app: typer.Typer) -> None:
    app.command()(chaos)


def chaos(
    ctx: typer.Context,
    proposals: Annotated[int, typer.Option(min=1, help="Releases to propose.")] = 100,
    kill: Annotated[
        str,
        typer.Option(help=f"What to SIGKILL: {', '.join(KINDS)}. `freeze` SIGSTOPs a service instead (see --freeze)."),
    ] = "reviewer",
    freeze: Annotated[
        str,
        typer.Option(
            help="With --kill freeze, which process to SIGSTOP: reviewer, coordinator or any (picked at random)."
        ),
    ] = "any",
    freeze_for: Annotated[
        float | None,
        typer.Option(
            callback=positive,
            help="With --kill freeze, seconds each freeze lasts (default: deadline + 10, past the heartbeat TTL too).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the kill moments and victims: the same seed, the same run.")
    ] = 0,
    kills: Annotated[
        int,
        typer.Option(
            min=0, help="How many kills (each followed by a restart), each while rounds are open (work in flight)."
        ),
    ] = 3,
    allow_idle_kills: Annotated[
        bool,
        typer.Option(
            "--allow-idle-kills", help="Do not fail the run when a kill hit nothing (no round open, nothing to kill)."
        ),
    ] = False,
    rate: Annotated[
        float, typer.Option(min=0, help="Proposals per second; 0 sends them all at once (a burst).")
    ] = 50.0,
    replicas: Annotated[int, typer.Option(min=1, help="Processes per service.")] = 1,
    deadline: Annotated[float, typer.Option(callback=positive, help="Round deadline, seconds.")] = 60.0,
    timeout: Annotated[
        float | None, typer.Option(callback=positive, help="Seconds to wait for the outcomes (default grows with N).")
    ] = None,
    through_deadlines: Annotated[
        bool,
        typer.Option(
            "--through-deadlines",
            help="After the last outcome, keep listening until every round's deadline has fired (up to --deadline "
            "+ 2 s more): a deadline reaching a round long decided must publish nothing. Pair with a short --deadline.",
        ),
    ] = False,
    rss: Annotated[bool, typer.Option("--rss", help="Also print each service's memory before and after.")] = False,
    log_level: Annotated[
        str, typer.Option(help="Log level of the services (their logs go to MESH_HOME/chaos/logs).")
    ] = "INFO",
) -> None:
    """Start a mesh, propose N releases while killing what you name (restarting it each time),
    wait for the outcomes, and print two lines:

    `kills=K idle=0 open_rounds=3,1,… open_in_kv=2,1,…`
    `proposals=N outcomes=N lost=0 duplicated=0 wrong=0 dead_lettered=K heard=N published=N unacked=N p50=… p99=…`

    Each kill strikes while work is in flight: after a seeded number of proposals has been
    acknowledged, and only while some of them have no outcome yet (after a restart, only once the
    mesh has decided something again). `open_rounds` says how many had none at each kill (as the
    run counts them), `open_in_kv` how many rounds the rounds KV held unfinished just after it
    (`-` with NATS down). A kill that hit nothing — no round open, or nothing to kill — is
    `idle`, and fails the run unless --allow-idle-kills.

    Outcomes are counted three ways: `outcomes` in the outcomes stream (after its dedupe),
    `heard` by a core-NATS subscriber during the run (every publish, as a consumer would get
    it), `published` in the coordinators' logs. `duplicated` counts outcomes beyond the first
    for a release in whichever of the three shows most — less, in what was heard, one copy for
    each publish the stream did not acknowledge and the coordinator sent again (`unacked`, its
    `outcome publish unacknowledged` lines: core subscribers hear a publish the stream missed).

    One release in four is risky (a committed AWS or Stripe key, a customer-facing change
    without a changelog entry); each outcome is judged against what the offline rules and the
    policy say its content deserves. `wrong` counts outcomes that contradict it: an approval of
    what the rules reject, a round decided with nobody expected, or a blocked/escalated clean
    release whose reviewers all answered (failing closed after a missed deadline is right).
    Exits 0 only when nothing was lost, duplicated or wrong and no kill was idle.

    `--kill freeze` SIGSTOPs a reviewer or the coordinator (`--freeze`) for `--freeze-for`
    seconds, then SIGCONTs it: alive and connected but silent, past its heartbeat TTL.
    `--kill node` runs a 3-node embedded cluster (R3 streams and KV) and kills one node at a
    time. `--kill steward` also runs the steward daemon (an active instance and a standby) and
    kills either; it then prints a `steward:` line (events applied, state equal to a replay of
    its streams, effects once) and exits 1 unless all of that holds. It always runs its own embedded NATS (data in MESH_HOME/chaos), never yours, with
    the reviewers on their offline rules.

    `--through-deadlines` keeps listening after the last outcome until every round's deadline
    has fired on its long-decided round (which must publish nothing); pair it with a short
    `--deadline`.

    Examples: `mesh chaos --proposals 500 --kill nats --seed 7`,
    `mesh chaos --kill coordinator --deadline 6 --through-deadlines`,
    `mesh chaos --kill freeze --freeze reviewer --freeze-for 30 --deadline 20`
    """
    if kill not in KINDS:
        raise typer.BadParameter(f"unknown kill kind {kill!r}; choose one of {', '.join(KINDS)}", param_hint="'--kill'")
    if freeze not in FREEZE_TARGETS:
        raise typer.BadParameter(
            f"unknown freeze target {freeze!r}; choose one of {', '.join(FREEZE_TARGETS)}", param_hint="'--freeze'"
        )
    if log_level.upper() not in LOG_LEVELS:
        raise typer.BadParameter(
            f"unknown log level {log_level!r}; choose one of {', '.join(LOG_LEVELS)}", param_hint="'--log-level'"
        )
    settings: MeshSettings = ctx.obj
    plan = ChaosPlan(
        proposals=proposals,
        kill=kill,
        seed=seed,
        kills=0 if kill == "none" else kills,
        rate=rate,
        replicas=replicas,
        deadline=deadline,
        timeout=timeout,
        through_deadlines=through_deadlines,
        log_level=log_level,
        freeze=freeze,
        freeze_for=freeze_for,
    )

    def say(line: str) -> None:
        print(f"chaos: {line}", file=sys.stderr, flush=True)

    say(f"kill={kill} proposals={proposals} kills={plan.kills} seed={seed} rate={rate:g}/s")
    report = asyncio.run(run_chaos(settings, plan, home=settings.home / "chaos", say=say))
    if rss:
        for label, memory in report.memory.items():
            typer.echo(
                f"rss {label}: before={memory.before / MB:.1f}MB after={memory.after / MB:.1f}MB "
                f"peak={memory.peak / MB:.1f}MB"
            )
        typer.echo(
            f"backpressure: most proposals waiting in the stream for a reviewer={report.backlog_max}, "
            f"most held unacked by one reviewer's consumer={report.ack_pending_max} (max_ack_pending={report.max_ack_pending})"
        )
    for why in report.wrong[:SHOWN_WRONG]:
        say(f"wrong: {why}")
    if len(report.wrong) > SHOWN_WRONG:
        say(f"wrong: … and {len(report.wrong) - SHOWN_WRONG} more")
    say(f"done in {report.elapsed:.1f} s")
    idle = len(report.idle_kills)
    if idle and not allow_idle_kills:
        say(
            f"{idle} of {len(report.kills)} kills hit no work in flight (no round open, or nothing to kill): "
            "send more --proposals or lower the --rate so rounds overlap the kills, or pass --allow-idle-kills"
        )
    if report.steward is not None:
        typer.echo(report.steward.line(kills=len(report.kills)))
    typer.echo(report.kills_line())
    typer.echo(report.tally.line())
    failed = not report.tally.ok or (idle and not allow_idle_kills)
    if failed or (report.steward is not None and not report.steward.ok):
        raise typer.Exit(1)
