"""`mesh bench llm`: reviews per minute against a provider limit, on the fake Anthropic server."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from bus.errors import MeshError
from bus.ops.settings import MeshSettings

console = Console(soft_wrap=True)


def register(bench: typer.Typer) -> None:
    """Add `llm` to the `mesh bench` command group."""
    bench.command("llm")(bench_llm)


def bench_llm(
    ctx: typer.Context,
    rpm: Annotated[float, typer.Option(min=1, help="Provider limit: requests per minute per model.")] = 300,
    tpm: Annotated[float | None, typer.Option(min=1, help="Provider limit: input tokens per minute per model.")] = None,
    latency: Annotated[float, typer.Option(min=0, help="Seconds the fake model takes per answer.")] = 1.5,
    overloaded: Annotated[float, typer.Option(min=0, max=1, help="Share of calls answered 529.")] = 0.10,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of load.")] = 60,
    proposals: Annotated[int | None, typer.Option(min=1, help="Proposals to publish (overrides --duration).")] = None,
    load: Annotated[float, typer.Option(min=0.05, help="Offered reviews/min as a share of the limit.")] = 1.0,
    chain: Annotated[str, typer.Option(help="Fallback chain of every reviewer.")] = (
        "claude-sonnet-4-6,claude-haiku-4-5,offline"
    ),
    tier: Annotated[str, typer.Option(help="Cheap model asked first for small, low-risk releases.")] = "",
    prompt_caching: Annotated[bool, typer.Option("--prompt-caching/--no-prompt-caching")] = True,
) -> None:
    """Run the mesh against a fake provider with a request limit, latency and 529s; print the figures.

    Starts the fake Anthropic server in this process, an embedded nats-server and the reviewers
    and coordinator as processes (each reviewer gated at its share of the limit), publishes
    proposals at the pace that offers `--load` × the limit in reviews, and reports reviews/min
    as a share of the limit, 429s, failed reviews, p50/p99 review latency, tokens and cost per
    review with and without prompt caching, and how often each step of the chain answered.
    Targets: ≥ 90 % of the limit, zero failed reviews, zero 429s that reach a review.

    Example: `mesh bench llm` (about 80 s), or `mesh bench llm --proposals 10 --latency 0.1`
    """
    from bus.ops.bench.llm import LLMBenchPlan, run_llm_bench
    from services.llm.chain import parse_chain
    from services.llm.errors import LLMConfigError

    try:
        parse_chain(chain, field_name="--chain")
    except LLMConfigError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--chain: "), param_hint="'--chain'") from None
    settings: MeshSettings = ctx.obj
    plan = LLMBenchPlan(
        rpm=rpm,
        tpm=tpm,
        latency=latency,
        overloaded=overloaded,
        duration=duration,
        proposals=proposals,
        load=load,
        chain=chain,
        tier=tier,
        prompt_caching=prompt_caching,
    )
    home = settings.home / "bench-llm"
    console.print(
        f"[bold]mesh bench llm[/]: provider limit {rpm:g} req/min per model, latency {latency:g} s, "
        f"{overloaded:.0%} 529s; {plan.count} proposals × {len(plan.reviewers)} reviewers at {load:.0%} of the limit; "
        f"chain {chain}{f', tier {tier}' if tier else ''}; logs in {home}"
    )
    try:
        result = run_llm_bench(settings, plan, home=home)
    except OSError as exc:
        raise MeshError(f"the LLM benchmark could not run: {exc}") from exc
    print_result(result)
    if result.failed:
        raise MeshError(f"{result.failed} review(s) never arrived; see the logs in {home}")


def print_result(result) -> None:
    plan = result.plan
    ok = lambda good: "[green]✓[/]" if good else "[red]✗[/]"  # noqa: E731 - a one-line formatter reads best inline
    with_cache, without_cache = result.cost_per_review()
    tokens = result.tokens_per_review()
    console.print(
        f"reviews/min         {result.reviews_per_minute:7.1f}  = {result.share_of_limit:6.1%} of the "
        f"{plan.rpm:g} limit {ok(result.share_of_limit >= 0.9)}  ({len(result.reviews)} reviews in "
        f"{result.wall_seconds:.1f} s)"
    )
    console.print(
        f"429s received       {result.rate_limited:7d}  (retried); reaching a review: {result.rate_limited_reviews} "
        f"{ok(result.rate_limited_reviews == 0)}"
    )
    console.print(f"failed reviews      {result.failed:7d}  of {result.expected} {ok(result.failed == 0)}")
    console.print(
        f"review latency      p50 {result.percentile(50):.2f} s, p99 {result.percentile(99):.2f} s "
        "(proposal published → review arrived)"
    )
    console.print(
        f"tokens per review   {sum(tokens.values()):7.0f}  (input {tokens['input_tokens']:.0f}, output "
        f"{tokens['output_tokens']:.0f}, cache read {tokens['cache_read_input_tokens']:.0f}, cache write "
        f"{tokens['cache_creation_input_tokens']:.0f})"
    )
    caching = "with prompt caching" if plan.prompt_caching else "caching off"
    saved = 1 - with_cache / without_cache if without_cache else 0.0
    console.print(
        f"cost per review     ${with_cache:.5f} {caching} (measured); ${without_cache:.5f} without "
        f"(same tokens at the input price): {saved:.0%} saved"
    )
    per_agent = ", ".join(f"{agent} ${cost:.4f}" for agent, cost in sorted(result.cost_per_agent().items()))
    console.print(f"cost per agent      {per_agent}")
    total = len(result.reviews) or 1
    steps = ", ".join(f"{step}: {n} ({n / total:.1%})" for step, n in sorted(result.steps().items()))
    console.print(f"answering step      {steps}")
    if plan.tier:
        alone, escalated = result.tiering()
        console.print(
            f"tiering             {plan.tier} settled {alone} ({alone / total:.1%}) alone, "
            f"escalated {escalated} ({escalated / total:.1%}) to a stronger model"
        )
    reasons = result.skip_reasons()
    if reasons:
        console.print("steps passed over   " + ", ".join(f"{why} ×{n}" for why, n in reasons.most_common()))
    fake = result.fake_stats
    console.print(
        f"provider saw        {fake.get('requests', 0)} requests, by status {fake.get('by_status')}, "
        f"peak {fake.get('peak_in_flight')} in flight"
    )
