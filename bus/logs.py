"""Structured logs: one line per message event, with the correlation id bound.

Every line is redacted on its way out (`redact_event`, `contracts.redaction`): a password,
token or key that reaches a log call — in the message, a field or a traceback — is printed
as `[REDACTED]`.

With tracing on, every line logged inside a span carries its `trace_id` and `span_id`
(`add_trace_ids`), so a log line leads to its trace and back.

Arrows make a stream of lines scannable (after arq): `→` received, `✓` acked,
`↻` will be redelivered, `✗` dead-lettered.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import TextIO

import structlog
from opentelemetry import trace
from structlog.typing import ExcInfo

from contracts.redaction import REDACTED, is_secret_key, redact, redact_value


def configure_logging(level: str = "INFO", fmt: str = "console", *, trace_ids: bool = False) -> None:
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=_redacted_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([add_trace_ids] if trace_ids else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *([structlog.processors.format_exc_info] if fmt == "json" else []),
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # FastStream's own logger: warnings and errors only, so our lines stay the readable ones
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def add_trace_ids(logger: object, method: str, event: dict) -> dict:
    """A structlog processor: the current span's `trace_id` and `span_id` (hex), when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event.setdefault("span_id", trace.format_span_id(context.span_id))
    return event


def redact_event(logger: object, method: str, event: dict) -> dict:
    """A structlog processor: every string in the event is redacted, so no log line carries a secret.

    Values under secret-looking keys (`password=`, `authorization=`) go whole; any other string
    keeps its words and loses what `contracts.redaction.redact` recognises.
    """
    for key, value in event.items():
        if type(value) is str:  # the common case, kept cheap: every log line passes here
            event[key] = REDACTED if value and is_secret_key(key) else redact(value)
        elif isinstance(value, dict | list | tuple):
            event[key] = redact_value(value, key=key)
    return event


class RedactingFormatter(logging.Formatter):
    """A stdlib formatter whose lines (message and traceback) are redacted, for libraries' own logs."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _redacted_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    # A plain traceback, redacted: exception messages quote URLs and config, and rich's
    # tracebacks would print local variables too.
    text = io.StringIO()
    structlog.dev.plain_traceback(text, exc_info)
    sio.write(redact(text.getvalue()))


def get_logger(service: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger().bind(service=service)
