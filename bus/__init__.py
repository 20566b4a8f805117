"""Everything that touches NATS: settings, the embedded server, streams and buckets as code,
the agent runtime, dead letters, logging and the `mesh` command line."""
