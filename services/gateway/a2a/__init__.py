"""The gateway's A2A front door: an A2A v1.0 JSON-RPC interface, served by the official SDK's
server framework with a task store and an event stream that live on the bus.

One task is one proposal. `SendMessage` with a data part holding a `release.proposed` publishes
it for the caller (Front.submit) and answers with a task following its *revision* (release id
and content digest): `submitted` until its round opens, `working` while reviews come in, then
`completed` with the outcome (`RoundDecided`) as its artifact — `input-required` when the round
escalated to a person. `GetTask`, `SubscribeToTask` (SSE) and `ListTasks` read the same from the
bus on any replica; `CancelTask` is refused, a published round cannot be called back.

What lives where (nothing in one process's memory that another replica would need):

    gateway KV  task.<id>            the task as created, its owner and its revision (records.py)
    gateway KV  task-owner.<h>.<id>  the caller's task index, for ListTasks
    rounds KV, outcomes stream       the task's state: its revision's round and outcome (views.py)

Modules: mount.py (the endpoint and its door), handler.py (the SDK's handler, with our answers),
executor.py (publish and follow), store.py and stream.py (the SDK's cluster seams, on the bus),
records.py (the KV records), views.py (pure: a revision's state as an A2A task),
proposals.py (the proposal in a message), users.py (the caller as the SDK's user).
"""

from services.gateway.a2a.mount import mount_a2a

__all__ = ["mount_a2a"]
