"""How every process connects to NATS: the same options everywhere, from the settings."""

from __future__ import annotations

import nats
from nats.aio.client import Client

from bus.settings import MeshSettings


def connect_options(settings: MeshSettings, *, name: str) -> dict:
    """Options shared by raw nats-py clients and FastStream's broker.

    Reconnect forever: a NATS restart must never take a service down with it.
    """
    options: dict = {
        "servers": settings.nats_servers,
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 5,
    }
    if settings.nats_credentials:
        options["user_credentials"] = str(settings.nats_credentials)
    return options


async def connect(settings: MeshSettings, *, name: str) -> Client:
    """A raw nats-py connection (CLI, tests, provisioning)."""
    options = connect_options(settings, name=name)
    # The CLI should fail fast on a wrong URL instead of retrying forever.
    options["max_reconnect_attempts"] = 60
    options["allow_reconnect"] = True
    return await nats.connect(**options)
