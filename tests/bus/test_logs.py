"""Log lines carry no secrets: every string of every event is redacted before it is rendered."""

import json
import logging

import pytest
import structlog

from bus.logs import configure_logging, get_logger, redact_event

AKIA = "AKIAZ3MEXQ4J7HNR2PLC"


@pytest.fixture
def logging_configured():
    """`configure(fmt)`: the mesh's logging, undone after the test."""
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def configure(level: str, fmt: str) -> None:
        root.handlers = []  # basicConfig only configures a bare root logger (pytest adds its own)
        configure_logging(level, fmt)

    yield configure
    structlog.configure(**saved)
    root.handlers, root.level = handlers, level


def test_the_processor_redacts_every_string_of_an_event():
    """Message, fields and nested values lose secrets; secret-named fields lose their value whole."""
    event = {
        "event": f'reply said password = "hunter2" and {AKIA}',
        "password": "hunter2",
        "url": "nats://mesh:s3cret@127.0.0.1:4222",
        "headers": {"Authorization": "Bearer abc"},
        "attempts": 3,
    }
    assert redact_event(None, "info", event) == {
        "event": 'reply said password = "[REDACTED]" and [REDACTED]',
        "password": "[REDACTED]",
        "url": "nats://mesh:[REDACTED]@127.0.0.1:4222",
        "headers": {"Authorization": "[REDACTED]"},
        "attempts": 3,
    }


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_configured_logger_prints_no_secret(logging_configured, capsys, fmt):
    """Through the real configuration, a line with a password, a key and an exception prints none of them."""
    logging_configured("INFO", fmt)
    log = get_logger("security")
    log.info(f"model reply: DB_PASSWORD = 'hunter2' and {AKIA}", token="tok-123456", release_id="rel-42")
    try:
        raise ConnectionError("cannot reach nats://mesh:s3cret@nats:4222")
    except ConnectionError:
        log.exception("connect failed")
    err = capsys.readouterr().err
    for secret in ("hunter2", AKIA, "tok-123456", "s3cret"):
        assert secret not in err
    assert "rel-42" in err and "[REDACTED]" in err
    if fmt == "json":
        first, second = (json.loads(line) for line in err.strip().splitlines())
        assert first["event"] == "model reply: DB_PASSWORD = '[REDACTED]' and [REDACTED]"
        assert "nats://mesh:[REDACTED]@nats:4222" in second["exception"]


def test_library_logs_through_the_stdlib_are_redacted(logging_configured, capsys):
    """A warning a library (nats-py, uvicorn) logs through `logging` is redacted too."""
    logging_configured("INFO", "console")
    logging.getLogger("nats.aio.client").warning("connect to %s failed", "nats://mesh:s3cret@nats:4222")
    err = capsys.readouterr().err
    assert "s3cret" not in err and "nats://mesh:[REDACTED]@nats:4222" in err
