"""bus/ops/identities.py and `mesh identities`: seeds and the server's authorization block,
written so only their owner can read them, kept across runs unless rotated."""

from __future__ import annotations

import os
import subprocess
import sys

import nkeys

from bus.ops.identities import generate_for_mesh, render_authorization
from bus.ops.settings import MeshSettings
from services.index import SERVICES


def test_every_file_is_private_and_every_service_has_its_own_key(tmp_path):
    """One seed per service plus the operator, each mode 0600 in a 0700 folder, and auth.conf too;
    no two identities share a public key."""
    made = generate_for_mesh(MeshSettings(), tmp_path / "ids")
    assert {i.name for i in made.members} == {*SERVICES, "operator"}
    assert oct((tmp_path / "ids").stat().st_mode & 0o777) == "0o700"
    for path in (tmp_path / "ids").iterdir():
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
    keys = [i.public_key for i in made.members]
    assert len(set(keys)) == len(keys)
    for identity in made.members:
        seed = identity.seed_path.read_bytes().strip()
        assert nkeys.from_seed(bytearray(seed)).public_key.decode() == identity.public_key
        assert identity.public_key in made.authorization()


def test_generating_again_keeps_the_keys_and_rotate_replaces_them(tmp_path):
    """A second run keeps every seed (permissions may change, keys do not); --rotate makes new ones."""
    first = {i.name: i.public_key for i in generate_for_mesh(MeshSettings(), tmp_path).members}
    again = {i.name: i.public_key for i in generate_for_mesh(MeshSettings(), tmp_path).members}
    rotated = {i.name: i.public_key for i in generate_for_mesh(MeshSettings(), tmp_path, rotate=True).members}
    assert first == again
    assert all(rotated[name] != key for name, key in first.items())


def test_the_authorization_block_is_what_nats_server_accepts(tmp_path):
    """The generated block, as a whole configuration file, passes `nats-server -t` (config test)."""
    from bus.ops.embedded import find_nats_server

    made = generate_for_mesh(MeshSettings(), tmp_path / "ids")
    checked = subprocess.run(
        [find_nats_server(), "-t", "-c", str(made.authorization_file)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    harness = tmp_path / "with-harness.conf"
    harness.write_text(render_authorization([{"user": "h", "password": "p"}], no_auth_user="h"))
    assert subprocess.run([find_nats_server(), "-t", "-c", str(harness)], capture_output=True).returncode == 0


def test_cli_generate_print_and_add_publisher_with_one_line_errors(tmp_path):
    """`mesh identities generate --print` prints the block; add-publisher writes its seed;
    a bad name or event type is one line naming it, exit 1, no traceback."""
    env = {**os.environ, "MESH_HOME": str(tmp_path / ".mesh")}

    def mesh(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "bus.ops.cli", "identities", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    printed = mesh("generate", "--print")
    assert printed.returncode == 0 and printed.stdout.count('"nkey"') == len(SERVICES) + 1
    added = mesh("add-publisher", "ci", "--events", "release.proposed")
    assert added.returncode == 0 and (tmp_path / ".mesh" / "identities" / "ci.nk").exists()
    bad = mesh("add-publisher", "c i", "--events", "release.proposed")
    assert bad.returncode == 2 and bad.stderr.startswith("error: publisher name") and "Traceback" not in bad.stderr
    bad_event = mesh("add-publisher", "ci", "--events", "Release!")
    assert bad_event.returncode == 2 and "--events" in bad_event.stderr
    shown = mesh("show")
    assert "ci (publisher" in shown.stdout and "publish    mesh.events.release.proposed" in shown.stdout
