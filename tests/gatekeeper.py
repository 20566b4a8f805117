"""The shared test server's authorization, as `mesh up` would configure it, for many meshes.

Each test's mesh lives in its own namespace, so its services need identities of their own: a
test that starts services generates them (bus/ops/identities.py) and admits them here; the
server reloads its configuration and from then on lets each service do only what it declared.
The tests' own connections (fixtures, assertions, deliberate forgeries aside) come in without
credentials as the `harness` user, which may do anything: the harness is not under test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nats

from bus.ops.embedded import EmbeddedNats
from bus.ops.identities import OPERATOR, Identities, render_authorization

HARNESS = "harness"


@dataclass
class Gatekeeper:
    server: EmbeddedNats
    config: Path
    users: list[dict] = field(default_factory=lambda: [{"user": HARNESS, "password": os.urandom(8).hex()}])

    @classmethod
    def start(cls, folder: Path) -> Gatekeeper:
        config = folder / "authorization.conf"
        server = EmbeddedNats(store_dir=folder / "store", log_file=folder / "nats.log", extra_args=["-c", str(config)])
        gate = cls(server, config)
        gate._write()
        gate.server.start()
        return gate

    def admit(self, identities: Identities) -> Identities:
        """Add these identities to the server's users and wait until the server knows them."""
        self.users += identities.users()
        self._write()
        os.kill(self.server.process.pid, signal.SIGHUP)  # nats-server reloads its configuration
        # in a thread of its own: tests call this from inside their event loop too
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, self._until_known(identities.credential(OPERATOR))).result()
        return identities

    def _write(self) -> None:
        self.config.write_text(render_authorization(self.users, no_auth_user=HARNESS))

    async def _until_known(self, seed: Path, timeout: float = 10.0) -> None:
        give_up = time.monotonic() + timeout
        while True:
            try:
                nc = await nats.connect(self.server.url, nkeys_seed=str(seed), allow_reconnect=False)
                await nc.close()
                return
            except Exception:
                if time.monotonic() > give_up:
                    raise
                await asyncio.sleep(0.02)
