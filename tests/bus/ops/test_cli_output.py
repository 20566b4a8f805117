"""What `mesh` prints fits a terminal and a script: every `--json` is one JSON document (an array
for a list, an object otherwise), and tables at 80 columns fold long URLs and errors instead of
cutting them."""

from __future__ import annotations

import asyncio
import json
import re
import typing

import nats
import pytest

from bus.ops.launcher import provision_mesh
from contracts.deadletters import DeadLetter
from services.index import SERVICES
from services.security import build as build_security
from tests.bus.ops.test_cli import mesh
from tests.bus.ops.test_cli_garbage import SAMPLE, leaf_commands

LONG_ERROR = (
    "database postgres.payments.internal.example.com:5432/ledger refused the connection after 5 attempts "
    "(pool exhausted by 64 idle transactions); retrying would not help until the pool is resized"
)
LONG_URL = "http://security-reviewer-0.security-reviewer.agent-mesh.svc.cluster.local:18081"

# Commands with a `--json` flag, and how to run each so it has something to print.
JSON_RUNS: dict[str, tuple[list[str], type]] = {
    "publish": (["publish", "release.proposed", SAMPLE, "--json"], dict),
    "agents": (["agents", "--json"], list),
    "gateway keys add": (["gateway", "keys", "add", "ci", "--json"], dict),
    "gateway keys list": (["gateway", "keys", "list", "--json"], list),
    "admin history": (["admin", "history", "--json"], list),
    "dlq list": (["dlq", "list", "--json"], list),
    "identities show": (["identities", "show", "--out", "{identities}", "--json"], dict),
    "provision": (["provision", "--check-permissions", "--json"], dict),
    "schedule list": (["schedule", "list", "--json"], list),
    "schedule show": (["schedule", "show", "watch.check", "--json"], dict),
    "eval": (["eval", "--offline", "--json"], dict),
    "approvals list": (["approvals", "list", "--state", "all", "--json"], list),
    "audit": (["audit", "--json"], list),
}
# ... and those whose JSON needs a running mesh, tested where one runs.
JSON_TESTED_ELSEWHERE = {
    "status": "tests/e2e/test_cli_e2e.py",
    "trace": "tests/e2e/test_mesh_trace.py",
    "bench gateway": "tests/bus/ops/bench/test_bench_smoke.py",
    "bench daemon": "tests/bus/ops/bench/test_bench_smoke.py",
}


def json_flag_commands() -> set[str]:
    return {
        words
        for words, command in leaf_commands().items()
        if any("--json" in param.opts and getattr(param, "is_flag", False) for param in command.params)
    }


async def put_dead_letters(settings, errors: list[str]) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        for n, error in enumerate(errors):
            record = DeadLetter(
                subject=f"{settings.subjects.release_proposed}.with.a.rather.long.tail.of.tokens",
                payload=json.dumps({"release_id": f"rel-{n}"}),
                error=error,
                error_type="failed",
                service="security",
                deliveries=5,
            )
            await js.publish(settings.subjects.dead_letter("security"), record.model_dump_json().encode())
    finally:
        await nc.close()


def test_every_json_flag_is_accounted_for():
    """A new `--json` is added to JSON_RUNS (or said to be tested elsewhere), so its shape is checked."""
    assert json_flag_commands() == set(JSON_RUNS) | set(JSON_TESTED_ELSEWHERE)


async def test_every_json_output_is_one_json_document(settings, tmp_path):
    """Each command's `--json` prints exactly one JSON document on stdout: an array for a list of
    things (even an empty or one-element list), an object otherwise; never JSON lines."""
    await provision_mesh(settings, names=list(SERVICES))
    await put_dead_letters(settings, ["first failure", "second failure"])
    identities = tmp_path / "identities"
    assert (await asyncio.to_thread(mesh, "identities", "generate", "--out", str(identities))).returncode == 0

    for words, (args, shape) in JSON_RUNS.items():
        argv = [arg.format(identities=identities) for arg in args]
        result = await asyncio.to_thread(mesh, *argv, settings=settings, MESH_HOME=str(tmp_path / "home"))
        assert result.returncode == 0, f"mesh {words}: {result.stderr}"
        document = json.loads(result.stdout)  # the whole of stdout: one document
        assert isinstance(document, shape), f"mesh {words} --json printed a {type(document).__name__}"
    listed = json.loads(
        (
            await asyncio.to_thread(mesh, "dlq", "list", "--json", settings=settings, MESH_HOME=str(tmp_path / "home"))
        ).stdout
    )
    assert [row["error"] for row in listed] == ["first failure", "second failure"]


def column(output: str, name: str, following: str | None) -> str:
    """The text of one table column, its pieces joined across the lines of the (single) row,
    without the spaces (where a line was wrapped is not the point)."""
    lines = output.splitlines()
    header_at = next(i for i, line in enumerate(lines) if re.search(rf"\b{name}\b", line))
    header = lines[header_at]
    start = re.search(rf"\b{name}\b", header).start()
    end = re.search(rf"\b{following}\b", header).start() if following else None
    return "".join("".join(line[start:end].split()) for line in lines[header_at + 1 :])


async def test_a_long_error_is_shown_whole_at_80_columns(settings):
    """`mesh dlq list` in an 80-column terminal folds a long error over several lines: every
    character of it is there, no line is wider than 80, nothing is cut with `…`."""
    await provision_mesh(settings, names=list(SERVICES))
    await put_dead_letters(settings, [LONG_ERROR])

    result = await asyncio.to_thread(mesh, "dlq", "list", settings=settings, COLUMNS="80")

    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    assert max(map(len, result.stdout.splitlines())) <= 80
    assert column(result.stdout, "error", None) == "".join(LONG_ERROR.split())


async def test_a_long_url_is_shown_whole_at_80_columns(make_settings):
    """`mesh agents` in an 80-column terminal folds an instance's long URL instead of cutting it."""
    settings = make_settings(advertise_url=LONG_URL)
    agent = build_security(settings)
    async with agent.running():
        result = await asyncio.to_thread(mesh, "agents", settings=settings, COLUMNS="80")

    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    assert max(map(len, result.stdout.splitlines())) <= 80
    assert column(result.stdout, "url", "consumers") == LONG_URL


@pytest.mark.parametrize("words", sorted(JSON_RUNS))
def test_json_help_says_what_it_prints(words: str):
    """The `--json` help of a list says it prints an array; no help promises JSON lines."""
    command = leaf_commands()[words]
    (flag,) = [p for p in command.params if "--json" in p.opts]
    hints = typing.get_type_hints(command.callback, include_extras=True)
    help_text = typing.get_args(hints[flag.name])[1].help or ""
    assert "per line" not in help_text
    if JSON_RUNS[words][1] is list:
        assert "array" in help_text
