"""`mesh chaos`: prove, on your own machine, that the mesh neither loses nor duplicates outcomes,
nor decides one against its release's content, while its parts are SIGKILLed — reviewers, the
coordinator, the nats-server, a cluster node — or frozen with SIGSTOP — while work is in flight.

    report = await run_chaos(settings, ChaosPlan(proposals=500, kill="nats", seed=7), home=Path(".mesh/chaos"))
    print(report.kills_line())   # kills=3 idle=0 open_rounds=4,17,2 open_in_kv=-,-,-
    print(report.tally.line())   # proposals=500 outcomes=500 lost=0 duplicated=0 wrong=0 dead_lettered=0 heard=500 …
"""

from bus.ops.chaos.faults import FREEZE_TARGETS, KINDS
from bus.ops.chaos.runner import ChaosPlan, ChaosReport, run_chaos
from bus.ops.chaos.tally import Tally

__all__ = ["FREEZE_TARGETS", "KINDS", "ChaosPlan", "ChaosReport", "Tally", "run_chaos"]
