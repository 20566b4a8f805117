"""`ApprovalsClient.outcome_or_request` (behind the gateway's `?wait` and `mesh publish --wait`)
rides out a transient NATS error while it looks for an approval — a leader being elected, a
reconnect (`NoRespondersError`, a timeout) — as its outcome half already does
(`MeshClient.wait_for_revision`): the outcome that comes meanwhile is the answer, not a 500."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from nats.errors import NoRespondersError

from bus.approvals import ApprovalsClient
from bus.ops.settings import MeshSettings


class _Js:
    async def key_value(self, bucket):  # pragma: no cover - get() is replaced
        raise AssertionError


class _Nc:
    def jetstream(self, timeout=None):
        return _Js()


async def test_a_transient_error_looking_for_the_approval_does_not_lose_the_outcome():
    """The approvals KV answers "no responders" once; the outcome arrives 0.3 s later: it is returned."""
    approvals = ApprovalsClient(_Nc(), MeshSettings(namespace="t"))
    calls = 0

    async def get(approval_id):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise NoRespondersError
        return None

    approvals.get = get
    outcome = SimpleNamespace(release_id="rel-1")

    class Client:
        async def wait_for_revision(self, release_id, digest, *, timeout):
            await asyncio.sleep(0.3)
            return outcome

    found = await approvals.outcome_or_request(Client(), "rel-1", "d" * 64, timeout=5)
    assert found is outcome
