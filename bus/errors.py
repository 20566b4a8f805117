"""Errors the mesh raises on purpose, each saying what went wrong and what to do next.

MeshError
├── NatsServerNotFound     the nats-server binary is not installed
├── NatsServerFailed       the embedded server did not start
├── NatsUnreachable        a client could not connect: refused, timed out, or not authorized
├── ProvisioningError      a stream, consumer or bucket could not be made to match
├── InvalidMessage         a message failed to parse or validate: dead-letter, never retry
├── NotYet                 a handler cannot finish a message yet: hand it back after a delay
└── DaemonError            a daemon agent's state could not be kept (bus/stateful)
    ├── LeaseLost          another instance is active now: this one steps down to standby
    └── CheckpointUnreadable   the stored checkpoint cannot be decoded: nothing is applied until fixed
"""


class MeshError(Exception):
    """Base of every error the mesh raises on purpose."""


class NatsServerNotFound(MeshError):
    pass


class NatsServerFailed(MeshError):
    pass


class NatsUnreachable(MeshError):
    """`connect` gave up: the message names the URL, why, and what to check. The CLI exits 5."""


class ProvisioningError(MeshError):
    pass


class InvalidMessage(MeshError):
    """The message can never be processed as it is; retrying would not help."""


class NotYet(MeshError):
    """The message cannot be finished now, but can after `seconds` (another holds what it needs
    for a while): it is handed back then, not acked, and dead-lettered only on its last delivery."""

    def __init__(self, reason: str, *, seconds: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.seconds = seconds


class DaemonError(MeshError):
    pass


class LeaseLost(DaemonError):
    """This instance no longer holds its daemon's lease (it expired, or another instance wrote a
    checkpoint since): it stops applying, publishes nothing more and waits as a standby."""


class CheckpointUnreadable(DaemonError):
    """The checkpoint in KV is not one this runtime wrote (bad JSON, a missing or altered chunk,
    a state its model rejects). The daemon stays standby rather than start from nothing."""
