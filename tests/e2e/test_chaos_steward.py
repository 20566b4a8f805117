"""`mesh chaos --kill steward`: the daemon agent SIGKILLed while releases are decided; its
checkpointed state equals a replay of its streams and each effect is published once."""

from __future__ import annotations

import asyncio
import re

from tests.bus.ops.test_cli import mesh

STEWARD = re.compile(
    r"^steward: kills=(\d+) events=(\d+) applied=(\d+) state_equal=(yes|no) effects=(\d+) missing=(\d+) "
    r"unexpected=(\d+) duplicated=(\d+) seen_twice=(\d+)$"
)


async def test_chaos_kills_the_steward_and_its_state_equals_a_replay(tmp_path):
    """Two steward instances, either one SIGKILLed twice and restarted while 16 releases are
    decided: every event applied once (state equal to a replay), every effect once, exit 0."""
    result = await asyncio.to_thread(
        mesh,
        "chaos",
        *("--kill", "steward", "--proposals", "16", "--kills", "2", "--rate", "8", "--seed", "5"),
        timeout=170,
        MESH_HOME=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = next((STEWARD.match(row) for row in result.stdout.splitlines() if STEWARD.match(row)), None)
    assert line, result.stdout
    kills, events, applied, equal, effects, missing, unexpected, duplicated, seen_twice = line.groups()
    assert (kills, equal, missing, unexpected, duplicated, seen_twice) == ("2", "yes", "0", "0", "0", "0")
    assert int(events) == int(applied) >= 16 * 4  # a proposal, two reviews and an outcome each
    assert int(effects) >= 16  # a decision recorded per outcome (and any risk change)
    assert "killed steward" in result.stderr
