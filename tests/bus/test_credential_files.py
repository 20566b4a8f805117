"""`MESH_NATS_CREDENTIALS` naming a file that is no usable credential: one `error:` line naming
the variable and the file, no traceback, and no hang (nats-py reads a .creds file without a JWT
line for ever), before anything is published."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nkeys
import pytest

from bus.connect import credential_kind
from bus.errors import MeshError
from tests.e2e.support import SAMPLES
from tests.fakes.nats_jwt import creds_text, new_key


def a_seed() -> str:
    return new_key(nkeys.PREFIX_BYTE_USER).seed.decode()


BAD = {
    "a seed with digits base32 has not": lambda: a_seed()[:10] + "1" * 48 + "\n",
    "a truncated seed": lambda: a_seed()[:20] + "\n",
    "a .creds file without its JWT": lambda: (
        "-----BEGIN USER NKEY SEED-----\n" + a_seed() + "\n------END USER NKEY SEED------\n"
    ),
    "a .creds file with a broken seed": lambda: creds_text("eyJhbGciOi.e30.sig", b"SUbroken"),
    "a JSON file": lambda: '{"user": "mesh"}\n',
    "an empty file": lambda: "",
}


@pytest.mark.parametrize("what", list(BAD))
def test_a_file_that_is_no_credential_is_one_clear_line_and_publishes_nothing(what, tmp_path):
    """`mesh publish` with such a file exits non-zero within seconds with one line naming
    MESH_NATS_CREDENTIALS and the file: no traceback, nothing sent (no server is even needed)."""
    bad = tmp_path / "mesh.creds"
    bad.write_text(BAD[what]())
    env = {**os.environ, "MESH_HOME": str(tmp_path / ".mesh"), "MESH_NATS_CREDENTIALS": str(bad)}
    env["MESH_NATS_URL"] = "nats://127.0.0.1:1"  # nothing listens: the file is refused before connecting
    result = subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", "publish", "release.proposed", str(SAMPLES / "release_clean.json")],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: MESH_NATS_CREDENTIALS:"), result.stderr
    assert str(bad) in lines[0] and "Traceback" not in result.stderr


def test_a_generated_seed_and_a_well_formed_creds_file_are_told_apart(tmp_path):
    """A seed file (as `mesh identities generate` writes it) is an nkey seed; a .creds file with
    a JWT and a valid seed is user credentials."""
    seed_file, creds_file = tmp_path / "svc.nk", tmp_path / "svc.creds"
    seed_file.write_text(a_seed() + "\n")
    creds_file.write_text(creds_text("eyJhbGciOi.e30.sig", new_key(nkeys.PREFIX_BYTE_USER).seed))
    assert credential_kind(seed_file) == "nkeys_seed"
    assert credential_kind(creds_file) == "user_credentials"
    with pytest.raises(MeshError, match="cannot read"):
        credential_kind(Path(tmp_path / "missing.nk"))
