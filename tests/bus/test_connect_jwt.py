"""bus/connect.py with `MESH_NATS_CREDENTIALS` naming a `.creds` file (user JWT + nkey seed),
against a nats-server in operator mode (`resolver: MEMORY`): the mesh connects as that JWT user,
and a credential the server does not trust, or none, is refused with the mesh's one-line error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nkeys
import pytest

from bus.client import MeshClient
from bus.ops.embedded import EmbeddedNats
from bus.ops.settings import MeshSettings
from tests.e2e.support import SAMPLES
from tests.fakes.nats_jwt import Operator, new_key, public

EXIT_NATS_UNREACHABLE = 5


@dataclass
class JwtNats:
    server: EmbeddedNats
    trust: Operator
    folder: Path


@pytest.fixture
def jwt_nats(tmp_path: Path) -> Iterator[JwtNats]:
    """A private nats-server that trusts only JWTs its operator's account issued."""
    trust = Operator.create()
    config = tmp_path / "operator.conf"
    config.write_text(trust.server_config())
    server = EmbeddedNats(store_dir=tmp_path / "nats", log_file=tmp_path / "nats.log", extra_args=["-c", str(config)])
    server.start()
    try:
        yield JwtNats(server, trust, tmp_path)
    finally:
        server.stop()


def mesh(nats: JwtNats, *args: str, credentials: Path | None) -> subprocess.CompletedProcess:
    """`mesh …` as a user runs it, with MESH_NATS_CREDENTIALS set to `credentials` (or unset)."""
    env = {k: v for k, v in os.environ.items() if k != "MESH_NATS_CREDENTIALS"}
    env |= {"MESH_HOME": str(nats.folder / ".mesh"), "MESH_NATS_URL": nats.server.url, "MESH_NAMESPACE": "jwt"}
    if credentials is not None:
        env["MESH_NATS_CREDENTIALS"] = str(credentials)
    return subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


async def test_the_mesh_connects_as_the_jwt_user_of_a_creds_file(jwt_nats):
    """With a .creds file of a user the operator's account issued, `mesh provision` creates the
    streams (JetStream works for that account), `mesh publish` stores a proposal, and a
    MeshClient reads it back — connected, as the server's monitor shows, as that very JWT user
    of that account."""
    creds = jwt_nats.trust.write_creds(jwt_nats.folder / "ci.creds", "ci")
    user = [line for line in creds.read_text().splitlines() if line.startswith("SU")][0]
    user_key = public(nkeys.from_seed(bytearray(user.encode())))

    provisioned = mesh(jwt_nats, "provision", credentials=creds)
    assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
    published = mesh(jwt_nats, "publish", "release.proposed", str(SAMPLES / "release_clean.json"), credentials=creds)
    assert published.returncode == 0, published.stdout + published.stderr
    assert "published release.proposed rel-42" in published.stdout

    settings = MeshSettings(nats_url=jwt_nats.server.url, namespace="jwt", nats_credentials=creds)
    async with await MeshClient.connect(settings, name="jwt-reader") as client:
        stored = await client.js.get_last_msg(settings.subjects.events_stream, settings.subjects.release_proposed)
        assert json.loads(stored.data)["release_id"] == "rel-42"
        monitor = f"http://127.0.0.1:{jwt_nats.server.monitor_port}/connz?auth=true"
        connections = httpx.get(monitor, timeout=5).json()["connections"]
    (ours,) = [c for c in connections if c.get("name") == "jwt-reader"]
    assert ours["authorized_user"] == user_key
    assert ours["account"] == public(jwt_nats.trust.account)


@pytest.mark.parametrize("which", ["untrusted", "absent"])
def test_a_creds_file_the_server_does_not_trust_or_none_is_refused_in_one_line(jwt_nats, which):
    """A .creds file whose user an account unknown to the operator signed, or no credential at
    all: `mesh publish` exits 5 within seconds with one `error:` line naming the server, what was
    refused and what to set — no traceback."""
    stranger = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    creds = jwt_nats.trust.write_creds(jwt_nats.folder / "stranger.creds", "x", account=stranger)
    result = mesh(
        jwt_nats,
        "publish",
        "release.proposed",
        str(SAMPLES / "release_clean.json"),
        credentials=creds if which == "untrusted" else None,
    )

    assert result.returncode == EXIT_NATS_UNREACHABLE, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    where = f"NATS at {jwt_nats.server.url}"
    if which == "untrusted":
        assert f"{where} refused the credential {creds} (authorization violation)" in lines[0]
        assert "check MESH_NATS_CREDENTIALS" in lines[0]
    else:
        assert f"{where} requires a credential and none was given" in lines[0]
        assert "set MESH_NATS_CREDENTIALS" in lines[0]
