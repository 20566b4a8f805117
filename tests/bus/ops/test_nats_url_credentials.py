"""A NATS URL's credentials are masked wherever the launcher shows or writes the URL."""

from __future__ import annotations

import json

import pytest

from bus.ops.launcher import RunningMesh, redact_nats_url
from bus.ops.processes import ServiceProcess


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://mesh:hunter2@127.0.0.1:4222", "nats://mesh:***@127.0.0.1:4222"),
        ("tls://mesh:p%40ss@nats.internal:4222", "tls://mesh:***@nats.internal:4222"),
        ("nats://s3cr3t-token@127.0.0.1:4222", "nats://***@127.0.0.1:4222"),
        ("mesh:hunter2@127.0.0.1:4222", "mesh:***@127.0.0.1:4222"),
        ("nats://a:x@h1:4222,nats://a:x@h2:4223", "nats://a:***@h1:4222,nats://a:***@h2:4223"),
    ],
)
def test_a_urls_password_or_token_is_masked(url, shown):
    """`user:password@` keeps the user and masks the password; a lone token is masked; each URL of a list."""
    assert redact_nats_url(url) == shown


def test_the_run_file_never_holds_the_password(settings, tmp_path):
    """`describe()` and `run.json` carry the URL with its password masked; the mesh keeps the real one."""
    real = "nats://mesh:hunter2@127.0.0.1:4222"
    mesh = RunningMesh(settings, real, [ServiceProcess("security", 8081, {})], home=tmp_path)
    path = mesh.write_run_file()
    assert "hunter2" not in path.read_text()
    assert json.loads(path.read_text())["nats_url"] == mesh.describe()["nats_url"] == "nats://mesh:***@127.0.0.1:4222"
    assert mesh.nats_url == real
