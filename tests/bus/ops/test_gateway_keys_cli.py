"""`mesh gateway keys`: add prints a key once that the gateway accepts, list never shows a
secret, revoke takes effect, and a bad argument is one line with the right exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.gateway.api_keys import ApiKeyStore


@pytest.fixture
def mesh(tmp_path: Path):
    """`mesh` as a subprocess in a MESH_HOME of its own, the way an operator runs it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MESH_")}
    env["MESH_HOME"] = str(tmp_path / ".mesh")

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "bus.ops.cli", "gateway", "keys", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)

    run.keys_file = tmp_path / ".mesh" / "gateway" / "api-keys.json"
    return run


def test_add_list_revoke(mesh):
    """`add` prints the key alone on stdout (a curl hint on stderr), and the gateway's store
    accepts it; `list --json` shows the record without secret or hash; `revoke` makes the
    store refuse it and `list` say so."""
    added = mesh("add", "ci")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("mk_") and "\n" not in key
    assert f'curl -H "Authorization: Bearer {key}"' in added.stderr
    assert ApiKeyStore(mesh.keys_file).find(key).name == "ci"

    as_json = mesh("add", "deploy-bot", "--scope", "releases:read", "--json")
    record = json.loads(as_json.stdout)
    assert record["name"] == "deploy-bot" and record["scopes"] == ["releases:read"]
    assert ApiKeyStore(mesh.keys_file).find(record["key"]).scopes == ["releases:read"]

    listed = json.loads(mesh("list", "--json").stdout)
    assert [entry["name"] for entry in listed] == ["ci", "deploy-bot"]
    assert listed[0]["scopes"] == ["events:release.proposed:publish", "releases:read"]
    assert key.split("_", 2)[2] not in json.dumps(listed) and "sha256" not in json.dumps(listed)

    revoked = mesh("revoke", "ci")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert ApiKeyStore(mesh.keys_file).find(key).revoked
    table = mesh("list").stdout
    assert "ci" in table and "revoked" in table and key not in table


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("add", "c i"), 2, "error: client name 'c i'"),
        (("add", "ci", "--scope", "releases read"), 2, "error: scope 'releases read'"),
        (("add",), 2, "error: Missing argument"),
        (("revoke", "nobody"), 1, "error: no live key for 'nobody'"),
    ],
    ids=["bad-name", "bad-scope", "no-name", "revoke-unknown"],
)
def test_bad_arguments_are_one_line_errors(mesh, args, code, says):
    """Invalid input exits 2, a name with no key exits 1; either way one `error:` line, no traceback."""
    result = mesh(*args)
    assert result.returncode == code
    assert result.stderr.startswith(says) and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_name_needs_replace_and_an_unknown_scope_is_warned(mesh):
    """A second `add` for a live name is refused pointing at --replace (the first key keeps
    working); --replace rotates it; a scope the gateway never checks is issued with a warning."""
    first = mesh("add", "ci").stdout.strip()
    again = mesh("add", "ci")
    assert again.returncode == 1 and "--replace" in again.stderr
    assert not ApiKeyStore(mesh.keys_file).find(first).revoked

    rotated = mesh("add", "ci", "--replace", "--scope", "release:read")
    assert rotated.returncode == 0
    assert "warning: scope 'release:read' matches none" in rotated.stderr
    assert ApiKeyStore(mesh.keys_file).find(first) is None
    assert ApiKeyStore(mesh.keys_file).find(rotated.stdout.strip()).scopes == ["release:read"]
