"""Operator tooling: the `mesh` CLI, the local launcher (embedded NATS, clusters, service
processes), dead-letter tools, `mesh bench` and `mesh chaos`.

This wing sits above everything else and may import any of it; nothing outside it imports it
(the runtime library in `bus/`, the coordinator and the services never do).
"""
