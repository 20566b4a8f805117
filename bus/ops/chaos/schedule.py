"""When `mesh chaos` strikes: after a seeded number of proposals has been published, and only
while a round is open — so a kill meets work in flight, not a mesh that has already finished;
and how long it listens after the last outcome.

Pure: no clock, no broker. The runner feeds it its own counts (proposals NATS acknowledged,
and of those, how many have no outcome heard yet) each time one of them changes.
"""

from __future__ import annotations

import random


def kill_marks(proposals: int, kills: int, rng: random.Random) -> list[int]:
    """For each kill, how many proposals must be published before it strikes: seeded,
    ascending, each in 1..proposals. Two kills may share a mark: the second strikes as soon as
    the first's victim is back and a round is open."""
    if proposals < 1:
        return [0] * kills
    return sorted(rng.randint(1, proposals) for _ in range(kills))


def due(mark: int, *, published: int, open_rounds: int, total: int, recovered: bool = True, over: bool = False) -> bool:
    """Whether the kill waiting for `mark` strikes now.

    - the run is over (every outcome is in, or the wait for them ran out): now, whatever is open;
    - fewer than `mark` proposals published: not yet;
    - nothing open, proposals still to come: not yet, the next one opens a round;
    - nothing open, nothing to come: now — an idle kill, which the run reports and fails on
      unless idle kills are allowed;
    - rounds open, but no outcome heard since the previous victim came back (`recovered`
      false): not yet — striking a mesh still starting up would meet its backlog, not its work;
    - rounds open and the mesh deciding: now.
    """
    if over:
        return True
    if published < mark:
        return False
    if open_rounds == 0:
        return published >= total
    return recovered


# The server fires a deadline at a whole second (`rfc3339_ceil`), then it is delivered and handled.
DEADLINE_SLACK_SECONDS = 2.0


def listen_until(
    last_outcome: float, *, settle: float, deadline: float, through_deadlines: bool, last_restart: float | None = None
) -> float:
    """When to stop listening for outcomes, on the clock of `last_outcome` (when the last one was
    heard): `settle` seconds after it, and after `last_restart` (when the last victim came back:
    a thawed or restarted coordinator may publish a duplicate then), or with `through_deadlines`
    also until every round's deadline has fired. A round opens before it is decided, so its
    deadline comes at most `deadline` after its outcome; it then reaches a round long decided,
    which must publish nothing."""
    until = max(last_outcome, last_restart if last_restart is not None else last_outcome) + settle
    if through_deadlines:
        until = max(until, last_outcome + deadline + DEADLINE_SLACK_SECONDS)
    return until
