"""The `mesh` command line: clear errors on bad input, nothing published, drift corrected."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nats
import pytest
from nats.js.api import ConsumerConfig


def mesh(*args: str, settings=None, stdin: str | None = None, timeout: float = 60, **env: str):
    """Run `mesh` as a subprocess, the way a user or a script runs it."""
    full_env = dict(os.environ)
    if settings is not None:
        full_env.update({"MESH_NATS_URL": settings.nats_url, "MESH_NAMESPACE": settings.namespace})
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bus.ops.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


async def event_count(settings) -> int:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        try:
            return (await js.stream_info(settings.subjects.events_stream)).state.messages
        except nats.js.errors.NotFoundError:
            return 0
    finally:
        await nc.close()


async def test_publish_rejects_an_invalid_file_and_publishes_nothing(settings, tmp_path):
    """A proposal missing a field and with a bad change is refused with exit 2, naming each field."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"service": "payments-api", "version": "1", "changes": [{"diff": "+x"}]}))
    before = await event_count(settings)

    result = mesh("publish", "release.proposed", str(bad), settings=settings)

    assert result.returncode == 2
    assert "release_id" in result.stderr
    assert "changes.0.path" in result.stderr
    assert "nothing was published" in result.stderr
    assert await event_count(settings) == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "Invalid JSON"),
        ("[1, 2, 3]", "valid"),
        ("", "Invalid JSON"),
    ],
    ids=["malformed", "wrong-shape", "empty"],
)
async def test_publish_rejects_garbage_from_stdin(settings, content, expected):
    """Garbage on standard input gives exit 2 and a readable reason, never a traceback."""
    result = mesh("publish", "release.proposed", "-", settings=settings, stdin=content)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


async def test_publish_names_unknown_event_types_and_missing_files(settings, tmp_path):
    """An unknown event type or an unreadable file is a clear exit-2 error."""
    unknown = mesh("publish", "release.exploded", "-", settings=settings, stdin="{}")
    assert unknown.returncode == 2 and "release.proposed" in unknown.stderr
    missing = mesh("publish", "release.proposed", str(tmp_path / "nope.json"), settings=settings)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


async def test_invalid_settings_are_reported_by_name():
    """A bad MESH_* variable is named in one line, exit 2."""
    result = mesh("schema", MESH_POLICY="mostly")
    assert result.returncode == 2
    assert "policy" in result.stderr and "mostly" in result.stderr
    assert "Traceback" not in result.stderr


async def test_schema_prints_every_contract_and_one_by_name():
    """`mesh schema` prints JSON Schema for every contract; `mesh schema NAME` for one."""
    everything = mesh("schema")
    assert everything.returncode == 0
    schemas = json.loads(everything.stdout)
    assert {"release.proposed", "review.submitted", "round.decided", "dead.letter"} <= set(schemas)
    one = json.loads(mesh("schema", "release.proposed").stdout)
    assert set(one["required"]) >= {"release_id", "service", "version"}
    assert mesh("schema", "nope").returncode == 2


async def test_provision_corrects_consumer_drift(settings):
    """A durable consumer created with other settings is reported and corrected by `mesh provision`."""
    first = mesh("provision", settings=settings)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout

    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        stream = settings.subjects.events_stream
        current = (await js.consumer_info(stream, "security")).config
        drifted = ConsumerConfig(**{**current.as_dict(), "max_deliver": 2, "ack_wait": 7})
        await js.add_consumer(stream, drifted)  # what an old deployment left behind
        assert (await js.consumer_info(stream, "security")).config.max_deliver == 2

        check = mesh("provision", "--check", settings=settings)
        assert check.returncode == 1
        assert "max_deliver 2 -> 5" in check.stdout

        fixed = mesh("provision", settings=settings)
        assert fixed.returncode == 0
        assert "corrected" in fixed.stdout and "max_deliver 2 -> 5" in fixed.stdout
        assert (await js.consumer_info(stream, "security")).config.max_deliver == 5

        again = mesh("provision", settings=settings)
        assert "0 created, 0 corrected, 0 drifted" in again.stdout
    finally:
        await nc.close()


async def test_provision_check_changes_nothing_on_an_empty_namespace(settings):
    """`mesh provision --check` lists what is missing and exits 1, creating nothing: afterwards
    the namespace still has no stream (before, it created all 21 objects)."""
    check = mesh("provision", "--check", settings=settings, COLUMNS="200")
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"missing   stream {settings.subjects.events_stream}" in check.stdout
    assert "0 created" in check.stdout
    nc = await nats.connect(settings.nats_url)
    try:
        names = [info.config.name for info in await nc.jetstream().streams_info()]
    finally:
        await nc.close()
    assert not [name for name in names if name.startswith(settings.subjects.stream(""))]
