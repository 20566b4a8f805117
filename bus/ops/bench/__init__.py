"""`mesh bench`: what the mesh itself costs, measured against a raw nats-py floor in the same run.

The benchmark starts an embedded nats-server and the real services as separate processes
(offline reviewers, so no model calls), publishes N proposals keeping C in flight, and times
each one from publish to outcome. In the same run, on their own nats-servers, two floors run
the identical message flow with raw nats-py and the same number of processes:

    floor      proposal -> two reviewers -> coordinator -> outcome; JetStream publishes that
               wait for their PubAck, durable pull consumers, explicit acks after the PubAck,
               the same payloads and the same offline rules; rounds kept in memory.
    floor+kv   the same, plus what makes rounds durable: one compare-and-set KV write per
               round change (no reads: the floor remembers the last revision) and the
               server-side deadline schedule.

And the mesh twice: `mesh` as `mesh up` starts it (one identity per service, a server that
checks each publish and subscription) and `mesh-open` on a server without authorization, so
mesh/mesh-open is what authorization costs.

Modules, one idea each:

    payloads    the proposal and reviews every system sends
    resources   CPU seconds and peak RSS of a process, from /proc
    floor       the raw nats-py reviewer and coordinator (`python -m bus.ops.bench.floor ...`)
    systems     start and stop a system under test: the mesh (secured or open), or a floor
    driver      publish N proposals with C in flight; publish -> outcome latency
    rounds      the coordinator holding 10,000 open rounds
    results     the figures, medians, ratios and the cost of authorization
    report      table, JSON and PNG
    runner      the whole benchmark, row by row, with a progress bar
    cli         `mesh bench`
"""
