"""Errors the mesh raises on purpose, each saying what went wrong and what to do next.

MeshError
├── NatsServerNotFound     the nats-server binary is not installed
├── NatsServerFailed       the embedded server did not start
├── NatsUnreachable        a client could not connect: refused, timed out, or not authorized
├── ProvisioningError      a stream, consumer or bucket could not be made to match
└── InvalidMessage         a message failed to parse or validate: dead-letter, never retry
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
