"""A fake Anthropic Messages API on a real loopback socket.

anthropic 2.x sends its requests with httpx2, which respx cannot intercept, so tests point the
SDK's `base_url` (or `ANTHROPIC_BASE_URL`, for other processes) at this server instead:

    with FakeAnthropic() as api:
        api.reply(tool_call({"verdict": "approve", ...}), server_error(500))
        client = anthropic.AsyncAnthropic(api_key="test", base_url=api.url)
        ...
        assert api.requests[0].body["tool_choice"] == {...}

Queued replies are served in order; once the queue is empty every request gets `default`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODEL = "claude-sonnet-4-6"
APPROVE = {"verdict": "approve", "confidence": 0.9, "rationale": "Nothing blocks this release.", "findings": []}
_ids = itertools.count(1)


@dataclass(frozen=True)
class Reply:
    """One canned HTTP answer; `delay` seconds pass before it is sent."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """A request the fake received, with its JSON body decoded."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


def usage(input_tokens: int = 812, output_tokens: int = 143, cache_read: int | None = 0,
          cache_creation: int | None = 1290) -> dict[str, Any]:  # fmt: skip
    """A `usage` object; None mirrors fields the API leaves null."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
    }


def _message(content: list[dict[str, Any]], stop_reason: str, model: str, use: dict[str, Any] | None) -> Reply:
    body = {
        "id": f"msg_fake_{next(_ids):04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": use if use is not None else usage(),
    }
    return Reply(body=body, headers={"request-id": f"req_fake_{next(_ids):04d}"})


def tool_call(tool_input: Any, *, name: str = "submit_review", model: str = DEFAULT_MODEL,
              use: dict[str, Any] | None = None) -> Reply:  # fmt: skip
    """The model called tool `name` with `tool_input` (valid or not: the fake doesn't check)."""
    block = {"type": "tool_use", "id": f"toolu_fake_{next(_ids):04d}", "name": name, "input": tool_input}
    return _message([block], "tool_use", model, use)


def text_only(text: str = "I think this release looks fine.", *, model: str = DEFAULT_MODEL) -> Reply:
    """The model answered in prose and called no tool."""
    return _message([{"type": "text", "text": text}], "end_turn", model, None)


def server_error(status: int = 500, *, retry_after_ms: int = 1) -> Reply:
    """An API error; `retry-after-ms` keeps the SDK's retry backoff short in tests."""
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": f"fake {status}"}}
    return Reply(status=status, body=body, headers={"retry-after-ms": str(retry_after_ms)})


def slow(reply: Reply, seconds: float) -> Reply:
    """`reply`, sent only after `seconds` (to make client timeouts fire)."""
    return Reply(status=reply.status, body=reply.body, headers=reply.headers, delay=seconds)


class FakeAnthropic:
    """A threaded HTTP server answering `POST /v1/messages` with scripted replies."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or tool_call(APPROVE)
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True  # a slow reply must not hold up close()
        # A short poll interval makes shutdown() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-anthropic", daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL to give the SDK."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reply(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    def always(self, reply: Reply) -> None:
        """Answer every request with `reply` from now on."""
        with self._lock:
            self._queue.clear()
            self.default = reply

    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            return self._queue.popleft() if self._queue else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
                recorded = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if self.path.split("?")[0] != "/v1/messages":
                    error = {"type": "not_found_error", "message": f"no route {self.path}"}
                    self._send(Reply(404, {"type": "error", "error": error}))
                    return
                self._send(fake._next(recorded))

            def _send(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                payload = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) before the slow reply came

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # keep test output quiet

        return Handler
