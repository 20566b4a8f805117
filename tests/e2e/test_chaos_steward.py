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
    """Two steward instances, either one SIGKILLed twice and restarted while 24 releases are
    decided, each kill while rounds are open: every event applied once (state equal to a
    replay), every effect once, exit 0. (Seed 5 strikes after the 9th and the 20th proposal; at
    4 a second the 20th comes after the first victim is back, so the second kill meets work too.)"""
    result = await asyncio.to_thread(
        mesh,
        "chaos",
        *("--kill", "steward", "--proposals", "24", "--kills", "2", "--rate", "4", "--seed", "5"),
        timeout=170,
        MESH_HOME=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = next((STEWARD.match(row) for row in result.stdout.splitlines() if STEWARD.match(row)), None)
    assert line, result.stdout
    kills, events, applied, equal, effects, missing, unexpected, duplicated, seen_twice = line.groups()
    assert (kills, equal, missing, unexpected, duplicated, seen_twice) == ("2", "yes", "0", "0", "0", "0")
    assert int(events) == int(applied) >= 24 * 4  # a proposal, two reviews and an outcome each
    assert int(effects) >= 24  # a decision recorded per outcome (and any risk change)
    assert re.search(r"^kills=2 idle=0 open_rounds=[1-9]\d*,[1-9]\d* ", result.stdout, re.MULTILINE), result.stdout
    assert "killed steward (pid" in result.stderr
