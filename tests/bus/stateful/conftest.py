"""Fixtures of the daemon runtime's tests: a provisioned namespace and a NATS client on it."""

from __future__ import annotations

import nats
import pytest

from bus.provision import provision


@pytest.fixture
async def nc(settings):
    """A client of the test's namespace, its streams and buckets created (as `mesh provision` does)."""
    client = await nats.connect(settings.nats_url)
    await provision(client.jetstream(), settings, reconcile=False)
    yield client
    await client.close()


@pytest.fixture
def js(nc):
    return nc.jetstream()
