"""A connection to the test's NATS with the namespace's streams provisioned, and a history to fill."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import nats
import pytest
from nats.aio.client import Client

from bus.provision import provision
from contracts.stewardship import DecisionRecorded
from services.steward.apply import service_name
from tests.services.steward.events import T0


@pytest.fixture
async def nc(settings) -> AsyncIterator[Client]:
    """The harness's connection, with every stream of the test's namespace created."""
    connection = await nats.connect(settings.nats_url)
    await provision(connection.jetstream(), settings, reconcile=False)
    yield connection
    await connection.drain()


@pytest.fixture
def record_history(nc, settings) -> Callable:
    """`await record_history(service, release, outcome, *rules)`: one DecisionRecorded in the history stream."""
    js = nc.jetstream()
    s = settings.subjects

    async def record(service: str, release: str, outcome: str = "approved", *rules: str, **fields) -> DecisionRecorded:
        message = DecisionRecorded(
            service=service_name(service),
            release_id=release,
            outcome=outcome,
            decided_at=T0,
            rules=list(rules),
            critical=1 if outcome == "blocked" else 0,
            reason=f"{outcome}.",
            **fields,
        )
        await js.publish(s.decision_recorded(message.service), message.model_dump_json().encode())
        return message

    return record
