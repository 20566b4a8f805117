"""Daemon agents: state kept in memory, changed by events, checkpointed to KV; one instance
active, the others standing by.

    state = agent.stateful(StewardState, checkpoint_every=1)

    @agent.applies(stream=s.outcomes_stream, subject=s.rounds_decided, model=RoundDecided)
    def on_outcome(state: StewardState, event: RoundDecided, at: Position) -> list[Effect]:
        ...  # pure: change `state` in place, return what to publish

    state.current, state.active, state.applied   # for HTTP views

Where to look:

- what an agent declares (`Position`, `Effect`, appliers), and `replay` (the state a list of
  events gives, as the runtime would apply them): `appliers.py`;
- several streams applied one event at a time, a backlog in stored order: `merge.py`;
- running it (standby, takeover, applying, checkpointing, stepping down): `handle.py`;
- the lease and its fencing token: `lease.py`;
- the checkpoint's layout in KV, compare-and-set, chunks: `checkpoint.py`;
- reading a stream from a sequence on, in order: `reader.py`;
- effects published after their checkpoint, never twice: `outbox.py`;
- its Prometheus families: `metrics.py`.
"""

from bus.stateful.appliers import Effect, Position, replay
from bus.stateful.handle import DAEMON_EXTENSION, StateHandle

__all__ = ["DAEMON_EXTENSION", "Effect", "Position", "StateHandle", "replay"]
