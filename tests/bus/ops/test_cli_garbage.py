"""Every `mesh` command, given garbage, says what is wrong in one line and exits with a documented
code: 2 for a bad argument or input, 1 for a failure, 5 when NATS cannot be reached; never a
traceback. The commands and their parameters are read from the typer app, so a new command or
option is covered as soon as it exists (and this file says when it needs a plausible value).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import pytest
import typer.main

from bus.ops.cli import EXIT_NATS_UNREACHABLE, app
from bus.ops.embedded import free_port

EXIT_FAILED, EXIT_INVALID = 1, 2
SAMPLE = str(files("contracts") / "samples" / "release_clean.json")
# Stand-ins the cases refer to; each run gets them under its own folder (see `_materialize`).
BINARY, LATIN1, UNDER_A_FILE, MISSING = "@binary", "@latin1", "@under-a-file", "@missing"

# A plausible value for each parameter a command requires, so that a case is wrong in one way only.
PLAUSIBLE: dict[str, dict[str, str]] = {
    "publish": {"event_type": "release.proposed", "source": SAMPLE},
    "run": {"service": "security"},
    "gateway keys add": {"name": "ci"},
    "gateway keys revoke": {"name": "ci"},
    "admin pause": {"agent": "security"},
    "admin resume": {"agent": "security"},
    "admin drain": {"agent": "security"},
    "dlq show": {"seq": "1"},
    "dlq replay": {"seq": "1"},
    "trace": {"release": "rel-1"},
    "identities add-publisher": {"name": "ci", "events": "release.proposed"},
    "schedule show": {"name": "watch.check"},
    "schedule pause": {"name": "watch.check"},
    "schedule resume": {"name": "watch.check"},
    "schedule trigger": {"name": "watch.check"},
    "approve": {"release": "rel-1", "note": "checked"},
    "reject": {"release": "rel-1", "note": "no changelog"},
}

# What each command does with an unreachable MESH_NATS_URL: these must say so (exit 5) ...
REACHES_NATS: dict[str, list[str]] = {
    "publish": ["release.proposed", SAMPLE],
    "provision": [],
    "agents": [],
    "admin pause": ["security"],
    "admin resume": ["security"],
    "admin drain": ["security"],
    "admin history": [],
    "dlq list": [],
    "dlq show": ["1"],
    "dlq replay": ["1"],
    "dlq purge": ["--yes"],
    "trace": ["rel-1"],
    "run": ["security", "--port", "0"],
    "up": ["--base-port", "0"],
    "schedule list": [],
    "schedule show": ["watch.check"],
    "schedule pause": ["watch.check"],
    "schedule resume": ["watch.check"],
    "schedule trigger": ["watch.check"],
    "approvals list": [],
    "approve": ["rel-1", "--note", "checked"],
    "reject": ["rel-1", "--note", "no changelog"],
    "audit": [],
    "deploy provision": ["--wait", "1"],
}
# ... these never use it: they start a NATS of their own, or need none.
OWN_OR_NO_NATS = {
    "gateway keys add",
    "gateway keys list",
    "gateway keys revoke",
    "demo",
    "chaos",
    "bench",
    "bench llm",
    "bench gateway",
    "bench daemon",
    "status",
    "schema",
    "asyncapi",
    "identities generate",
    "identities show",
    "identities add-publisher",
    "eval",
    "deploy compose",
}


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    codes: frozenset[int]
    stdin: str = ""
    home: dict[str, str] = field(default_factory=dict)  # files in MESH_HOME before it runs

    @property
    def id(self) -> str:
        home = "".join(f" [{name}: {text[:12]!r}]" for name, text in self.home.items())
        return " ".join(self.args) + (f" < {self.stdin[:12]!r}" if self.stdin else "") + home


def leaf_commands() -> dict[str, typing.Any]:
    """Every command a user can run, by its words (`dlq show`); a group with a default action
    (`bench`) counts as one."""
    found: dict[str, typing.Any] = {}

    def walk(group, words: tuple[str, ...]) -> None:
        for name, command in group.commands.items():
            if command.hidden:
                continue
            path = (*words, name)
            if hasattr(command, "commands"):
                if command.invoke_without_command:
                    found[" ".join(path)] = command
                walk(command, path)
            else:
                found[" ".join(path)] = command

    walk(typer.main.get_command(app), ())
    return found


def _declared(command, name: str) -> tuple[type, typing.Any]:
    """The parameter's base type (`int` for `int | None` and `list[int]`) and its typer info."""
    annotated = typing.get_type_hints(command.callback, include_extras=True)[name]
    base, info = typing.get_args(annotated)[:2]
    while typing.get_args(base):
        base = next(a for a in typing.get_args(base) if a is not type(None))
    return base, info


def _argv(words: str, command, **garbage: str) -> tuple[str, ...]:
    """The command's words, its required parameters (plausible unless given), then the garbage."""
    plausible = PLAUSIBLE.get(words, {})
    args: list[str] = words.split()
    for param in command.params:
        value = garbage.get(param.name, plausible.get(param.name))
        if value is None:
            continue
        args += [value] if param.param_type_name == "argument" else [param.opts[0], value]
    return tuple(args)


def generated_cases() -> list[Case]:
    """For every command: an unknown option, missing required arguments, and for each parameter
    the garbage its type invites (a negative number, one past its maximum; a path below a
    regular file). Typer refuses "abc" for a number by itself; one named case checks it is said
    in one line too."""
    usage = frozenset({EXIT_INVALID})
    cases: list[Case] = []
    for words, command in leaf_commands().items():
        cases.append(Case((*words.split(), "--no-such-option"), usage))
        if any(p.required for p in command.params):
            cases.append(Case(tuple(words.split()), usage))
        for param in command.params:
            if param.name == "ctx" or not param.expose_value:
                continue
            base, info = _declared(command, param.name)
            if base in (int, float):
                cases.append(Case(_argv(words, command, **{param.name: "-1"}), usage))
                if info.max is not None:
                    cases.append(Case(_argv(words, command, **{param.name: str(int(info.max) + 1)}), usage))
            elif base is Path:
                bad_path = Case(_argv(words, command, **{param.name: UNDER_A_FILE}), frozenset({1, 2}))
                cases.append(bad_path)
    return cases


def named_cases() -> list[Case]:
    """The failures users met, and their neighbours: each an expected failure, said in one line."""
    usage, failed = frozenset({EXIT_INVALID}), frozenset({EXIT_FAILED})
    publish = ("publish", "release.proposed")
    return [
        Case((*publish, BINARY), usage),
        Case((*publish, LATIN1), usage),
        Case((*publish, "-"), usage, stdin="\udcff\udcfe garbage"),
        Case((*publish, MISSING), usage),
        Case((*publish, "/"), usage),
        Case((*publish, "-"), usage, stdin="{not json"),
        Case(("publish", "release.exploded", SAMPLE), usage),
        Case((*publish, SAMPLE, "--wait", "-5"), usage),
        Case(("dlq", "show", "0"), usage),
        Case(("dlq", "show", "abc"), usage),
        Case(("dlq", "replay", "0"), usage),
        Case(("dlq", "purge", "--seq", "0", "--yes"), usage),
        Case(("dlq", "purge"), usage),  # no terminal to confirm on, and no --yes
        Case(("dlq", "list", "--limit", "-1"), usage),
        Case(("dlq", "show", "999999"), failed),
        Case(("dlq", "replay", "999999"), failed),
        Case(("run", "security", "--port", "99999"), usage),
        Case(("run", "nobody"), usage),
        Case(("up", "--base-port", "65534"), usage),
        Case(("up", "--cluster", "3"), usage),
        Case(("admin", "pause", "nobody"), usage),
        Case(("admin", "pause", "security", "--until", "soon"), usage),
        Case(("admin", "pause", "security", "--until", "99999999999d"), usage),
        Case(("admin", "drain", "nobody", "--timeout", "0.5"), failed),
        Case(("admin", "drain", "security", "--timeout", "0"), usage),
        Case(("admin", "history", "--limit", "-1"), usage),
        Case(("chaos", "--kill", "disk"), usage),
        Case(("chaos", "--freeze", "everything"), usage),
        Case(("chaos", "--log-level", "loud"), usage),
        Case(("chaos", "--kills", "-1"), usage),
        Case(("demo", "--timeout", "-1"), usage),
        Case(("trace", "rel-1"), failed),
        Case(("gateway", "keys", "add", "c i"), usage),
        Case(("gateway", "keys", "add", "ci", "--scope", "releases read"), usage),
        Case(("gateway", "keys", "add", "ci", "--scope", ""), usage),
        Case(("gateway", "keys", "revoke", "nobody"), failed),
        Case(("identities", "add-publisher", "c i", "--events", "release.proposed"), usage),
        Case(("identities", "add-publisher", "ci", "--events", "Release!"), usage),
        Case(("identities", "generate", "--out", UNDER_A_FILE), failed),
        Case(("bench", "--json", UNDER_A_FILE), usage),
        Case(("bench", "--plot", "/"), usage),
        Case(("bench", "llm", "--overloaded", "2"), usage),
        Case(("bench", "gateway", "-n", "0"), usage),
        Case(("provision", "--json"), usage),
        Case(("status",), failed),
        Case(("status",), failed, home={"run.json": "{not json"}),
        Case(("publish", "release.proposed", SAMPLE), failed),  # nothing provisioned in its namespace
        Case(("agents",), failed),
        Case(("bench", "llm", "--chain", "nope"), usage),
        Case(("schema", "nope"), usage),
        Case(("schedule", "show", "a.b.c"), usage),
        Case(("schedule", "show", "no such"), usage),
        Case(("schedule", "trigger", "nobody.nothing"), usage),
        Case(("schedule", "trigger", "watch.check", "--wait", "0"), usage),
        Case(("schedule", "pause", "watch.check"), failed),  # nothing provisioned: no bucket to remember it in
        Case(("no-such-command",), usage),
    ]


def _materialize(args: tuple[str, ...], folder: Path) -> list[str]:
    (folder / "a-file").write_text("not a folder")
    (folder / "binary.dat").write_bytes(bytes(range(256)) * 4)
    (folder / "latin1.json").write_bytes('{"release_id": "café"}'.encode("latin-1"))
    stand_ins = {
        BINARY: folder / "binary.dat",
        LATIN1: folder / "latin1.json",
        UNDER_A_FILE: folder / "a-file" / "below",
        MISSING: folder / "missing.json",
    }
    return [str(stand_ins.get(arg, arg)) for arg in args]


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_mesh(args: list[str], *, env: dict[str, str], stdin: str = "", timeout: float = 60) -> Ran:
    """`mesh ARGS` in its own process group, killed whole (services, nats-servers) on a timeout."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bus.ops.cli", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        start_new_session=True,
    )
    try:
        out, err = process.communicate(stdin.encode("utf-8", "surrogateescape"), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return Ran(-9, out.decode(errors="replace"), err.decode(errors="replace") + "\n(timed out)", timeout)
    return Ran(
        process.returncode, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - started
    )


def assert_one_clear_line(ran: Ran, codes: frozenset[int], what: str) -> None:
    shown = f"mesh {what} -> exit {ran.returncode}\nstdout:\n{ran.stdout}\nstderr:\n{ran.stderr}"
    assert "Traceback" not in ran.stdout + ran.stderr, shown
    assert ran.returncode in codes, shown
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), shown


CASES = list({case.id: case for case in generated_cases() + named_cases()}.values())


@pytest.fixture(scope="module")
def outcomes(nats_url, tmp_path_factory) -> dict[str, Ran]:
    """Every case, run in parallel against the shared nats-server, each in a fresh namespace."""
    root = tmp_path_factory.mktemp("garbage")

    def run(index_case: tuple[int, Case]) -> tuple[str, Ran]:
        index, case = index_case
        folder = root / f"case-{index}"
        (folder / ".mesh").mkdir(parents=True)
        for name, text in case.home.items():
            (folder / ".mesh" / name).write_text(text)
        env = {
            "MESH_NATS_URL": nats_url,
            "MESH_NAMESPACE": f"garbage{index}",
            "MESH_HOME": str(folder / ".mesh"),
            "COLUMNS": "80",
        }
        return case.id, run_mesh(_materialize(case.args, folder), env=env, stdin=case.stdin)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(run, enumerate(CASES)))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_garbage_gets_one_line_and_a_documented_exit_code(case: Case, outcomes):
    """The command refuses (or fails) with one `error:` line on stderr and a documented code."""
    assert_one_clear_line(outcomes[case.id], case.codes, case.id)


def test_every_required_parameter_has_a_plausible_value():
    """A new command's required parameters need a plausible value here, so its garbage is tested."""
    missing = [
        f"{words}: {param.name}"
        for words, command in leaf_commands().items()
        for param in command.params
        if param.required and param.name not in PLAUSIBLE.get(words, {})
    ]
    assert missing == [], "add them to PLAUSIBLE in this file"


def test_no_numeric_option_takes_a_negative_number():
    """Every number a command takes declares its range (typer `min=`) or checks it (a callback):
    the generated cases count on -1 being refused."""
    unbounded = []
    for words, command in leaf_commands().items():
        for param in command.params:
            if param.name == "ctx":
                continue
            base, info = _declared(command, param.name)
            if base in (int, float) and info.min is None and info.callback is None:
                unbounded.append(f"{words} {param.opts[0]}")
    assert unbounded == []


def test_every_command_is_known_to_use_mesh_nats_url_or_not():
    """Each command is in exactly one of REACHES_NATS and OWN_OR_NO_NATS, so a new one is tried
    against an unreachable URL below, or said not to need one."""
    commands = set(leaf_commands())
    assert set(REACHES_NATS) | OWN_OR_NO_NATS == commands
    assert not set(REACHES_NATS) & OWN_OR_NO_NATS


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as probe:  # nothing listens there: a connection is refused at once
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory) -> dict[str, Ran]:
    root = tmp_path_factory.mktemp("unreachable")
    url = f"nats://127.0.0.1:{_closed_port()}"

    def run(words: str) -> tuple[str, Ran]:
        env = {"MESH_NATS_URL": url, "MESH_HOME": str(root / words.replace(" ", "-")), "MESH_NAMESPACE": "gone"}
        return words, run_mesh([*words.split(), *REACHES_NATS[words]], env=env, timeout=60)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(run, REACHES_NATS))


@pytest.mark.parametrize("words", list(REACHES_NATS))
def test_an_unreachable_nats_is_one_line_within_seconds(words: str, unreachable):
    """With MESH_NATS_URL pointing at nothing, the command says so in one line, exit 5, at once."""
    ran = unreachable[words]
    assert_one_clear_line(ran, frozenset({EXIT_NATS_UNREACHABLE}), f"{words} (unreachable NATS)")
    # eight CLIs start at once: start-up alone takes seconds under load; a client that kept
    # retrying would run into the 60 s timeout
    assert ran.seconds < 45, f"mesh {words} took {ran.seconds:.1f} s to give up"


@pytest.mark.parametrize("command", [["run", "security", "--port"], ["up", "--base-port"]])
def test_a_busy_port_fails_before_anything_starts(command, nats_url, tmp_path):
    """`mesh run` (or `mesh up`) on a port something else listens on says so in one line, exit 1,
    and never logs "started"."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {"MESH_NATS_URL": nats_url, "MESH_NAMESPACE": "busy", "MESH_HOME": str(tmp_path / ".mesh")}
        ran = run_mesh([*command, str(port)], env=env, timeout=60)
    assert_one_clear_line(ran, frozenset({EXIT_FAILED}), " ".join(command))
    assert str(port) in ran.stderr and "started" not in ran.stdout + ran.stderr
