"""A fake Anthropic Messages API on a real loopback socket, as a thread or its own process.

anthropic 2.x sends requests with httpx2, which respx cannot intercept, so tests and benches
point `base_url` — or `ANTHROPIC_BASE_URL`, for services running as subprocesses — here:

    with FakeAnthropic() as api:
        api.profile("claude-sonnet-4-6", latency=1.5, overloaded_rate=0.1)
        api.limit(rpm=300)                               # per model, like the real API
        api.reply(rate_limited(retry_after=1), model="claude-sonnet-4-6")
        ...  # ANTHROPIC_BASE_URL=api.url
        assert api.stats()["by_status"]["429"] == 1

What each request gets, first match wins: a reply queued for its model, a reply queued for any
model, the `always` reply of its model, the `always` reply for all, else an answer built from
the request by the model's `Profile` (`model.py`). The provider rate limit applies only to
built answers. Requests the real API would reject (no key, no version header, roles out of
order, a tool_result without its tool_use, an unknown forced tool, more than 4 cache
breakpoints) get the same 400/401 error shape.

As a process: `python -m services.llm.fake --port 8999 --rpm 300 --latency 1.5 --overloaded 0.1`
prints its URL; `GET /_fake/stats`, `POST /_fake/profile` (`{"model": ..., "latency": ...}`),
`POST /_fake/limits` (`{"rpm": ..., "tpm": ...}`) and `POST /_fake/reset` steer it.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.llm.fake.model import Profile, PromptCache, ProviderLimits, answer, tokens_in
from services.llm.fake.replies import Reply, error


@dataclass(frozen=True)
class Recorded:
    """A request the fake received, with its JSON body decoded."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


def invalid(text: str) -> Reply:
    return error(400, "invalid_request_error", text)


def check_request(headers: dict[str, str], body: Any) -> Reply | None:
    """The 4xx the real API would send for this request, or None when it is acceptable."""
    if not (headers.get("x-api-key") or headers.get("authorization", "").startswith("Bearer ")):
        return error(401, "authentication_error", "x-api-key header is required")
    if "anthropic-version" not in headers:
        return invalid("anthropic-version: header is required")
    if not isinstance(body, dict):
        return invalid("The request body is not valid JSON.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return invalid("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return invalid("max_tokens: Field required")
    if body.get("stream"):
        return invalid("stream: this fake does not stream")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return invalid("messages: at least one message is required")
    previous_tool_uses: set[str] = set()
    for index, msg in enumerate(messages):
        role, content = msg.get("role"), msg.get("content")
        if role != ("user" if index % 2 == 0 else "assistant"):
            return invalid(f"messages.{index}.role: roles must alternate, starting with user")
        if not content:
            return invalid(f"messages.{index}: all messages must have non-empty content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        results = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if role == "user" and (results - previous_tool_uses or previous_tool_uses - results):
            return invalid(
                f"messages.{index}: each tool_use in the previous message needs exactly one tool_result here"
            )
        uses = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
        previous_tool_uses = uses if role == "assistant" else set()
    tools = {t.get("name") for t in body.get("tools") or []}
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool" and choice.get("name") not in tools:
        return invalid(f"tool_choice.name: tool {choice.get('name')!r} is not in tools")
    system = body.get("system")
    blocks = [*(body.get("tools") or []), *(system if isinstance(system, list) else [])]
    blocks += [b for m in messages if isinstance(m.get("content"), list) for b in m["content"]]
    if sum(1 for b in blocks if isinstance(b, dict) and b.get("cache_control")) > 4:
        return invalid("A maximum of 4 blocks with cache_control may be provided.")
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow reply must not hold up close()
    request_queue_size = 256  # the default backlog of 5 drops bursts of connections


class FakeAnthropic:
    """A threaded HTTP server answering `POST /v1/messages`; see the module docstring."""

    def __init__(
        self, default: Reply | None = None, *, host: str = "127.0.0.1", port: int = 0, seed: int | None = None
    ) -> None:
        self.requests: list[Recorded] = []
        self.profiles: dict[str | None, Profile] = {None: Profile()}
        self.limits = ProviderLimits()
        self.cache = PromptCache()
        self.rng = random.Random(seed)
        self._queues: dict[str | None, deque[Reply]] = {}
        self._always: dict[str | None, Reply] = {None: default} if default else {}
        self._statuses: Counter[tuple[str, int]] = Counter()
        self._in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._server = _Server((host, port), self._handler())
        # A short poll interval makes shutdown() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-anthropic", daemon=True
        )

    # --- steering ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give the SDK (or ANTHROPIC_BASE_URL)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reply(self, *replies: Reply, model: str | None = None) -> None:
        """Queue replies for the next requests (to `model` only, when given), in order."""
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)

    def always(self, reply: Reply | None, *, model: str | None = None) -> None:
        """Answer every request (to `model`) with `reply` from now on; None goes back to built answers."""
        with self._lock:
            self._queues.pop(model, None)
            if reply is None:
                self._always.pop(model, None)
            else:
                self._always[model] = reply

    def profile(self, model: str | None = None, **behaviour: Any) -> Profile:
        """Set how `model` (or every model without its own profile) answers when nothing is scripted."""
        with self._lock:
            self.profiles[model] = replace(self.profiles.get(model) or self.profiles[None], **behaviour)
            return self.profiles[model]

    def limit(self, *, rpm: float | None = None, tpm: float | None = None, burst_seconds: float = 2.0) -> None:
        """A provider rate limit per model: 429 with `retry-after` beyond it."""
        with self._lock:
            self.limits = ProviderLimits(rpm, tpm, burst_seconds=burst_seconds)

    def stats(self) -> dict[str, Any]:
        """Counts of answers by HTTP status, overall and per model, and peak concurrency."""
        with self._lock:
            by_status: Counter[str] = Counter()
            by_model: dict[str, Counter[str]] = {}
            for (model, status), count in self._statuses.items():
                by_status[str(status)] += count
                by_model.setdefault(model, Counter())[str(status)] += count
            return {
                "requests": sum(by_status.values()),
                "by_status": dict(by_status),
                "by_model": {model: dict(counts) for model, counts in by_model.items()},
                "peak_in_flight": self.peak_in_flight,
            }

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queues.clear()
            self._always.clear()
            self._statuses.clear()
            self.profiles = {None: Profile()}
            self.limits = ProviderLimits()
            self.cache = PromptCache()
            self.peak_in_flight = 0

    # --- running -------------------------------------------------------------------------

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

    # --- answering -----------------------------------------------------------------------

    def _choose(self, recorded: Recorded) -> Reply:
        model = recorded.model
        with self._lock:
            self.requests.append(recorded)
            for key in (model, None):
                if queue := self._queues.get(key):
                    return queue.popleft()
            for key in (model, None):
                if key in self._always:
                    return self._always[key]
            profile = self.profiles.get(model) or self.profiles[None]
            limits = self.limits
        # Input tokens of the whole prompt count (cached ones too: stricter than the real API).
        body = recorded.body
        prompt = json.dumps([body.get("tools"), body.get("system"), body.get("messages")])
        rejected = limits.admit(model, tokens_in(prompt))
        return rejected or answer(recorded.body, profile, self.cache, self.rng)

    def _answer(self, recorded: Recorded) -> Reply:
        problem = check_request(recorded.headers, recorded.body)
        reply = problem or self._choose(recorded)
        if isinstance(reply.body, dict) and reply.body.get("type") == "message" and reply.body.get("model") is None:
            reply = replace(reply, body={**reply.body, "model": recorded.model})
        with self._lock:
            self._statuses[(recorded.model or "?", reply.status)] += 1
        return reply

    def _control(self, method: str, path: str, body: Any) -> Reply:
        if method == "GET" and path == "/_fake/stats":
            return Reply(body=self.stats())
        if method == "POST" and path == "/_fake/profile":
            data = dict(body or {})
            model = data.pop("model", None)
            if isinstance(data.get("confidence"), list):
                data["confidence"] = tuple(data["confidence"])
            try:
                self.profile(model, **data)
            except TypeError as exc:
                return invalid(f"profile: {exc}")
            return Reply(body={"ok": True})
        if method == "POST" and path == "/_fake/limits":
            self.limit(**(body or {}))
            return Reply(body={"ok": True})
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return Reply(body={"ok": True})
        return error(404, "not_found_error", f"no route {method} {path}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real API

            def do_GET(self) -> None:
                self._send(fake._control("GET", self.path.split("?")[0], None))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
                path = self.path.split("?")[0]
                if path.startswith("/_fake/"):
                    self._send(fake._control("POST", path, body))
                    return
                if path != "/v1/messages":
                    self._send(error(404, "not_found_error", f"no route {self.path}"))
                    return
                recorded = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with fake._lock:
                    fake._in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake._in_flight)
                try:
                    self._send(fake._answer(recorded))
                finally:
                    with fake._lock:
                        fake._in_flight -= 1

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
                    self.close_connection = True  # the client gave up (timeout) before the slow reply came

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep output quiet

        return Handler


def main(argv: list[str] | None = None) -> None:
    """Run the fake as its own process until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m services.llm.fake", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rpm", type=float, default=None, help="provider requests/min per model")
    parser.add_argument("--tpm", type=float, default=None, help="provider input tokens/min per model")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per good answer")
    parser.add_argument("--overloaded", type=float, default=0.0, help="share of requests answered 529")
    parser.add_argument("--errors", type=float, default=0.0, help="share of requests answered 500")
    args = parser.parse_args(argv)
    api = FakeAnthropic(host=args.host, port=args.port)
    api.profile(latency=args.latency, overloaded_rate=args.overloaded, error_rate=args.errors)
    api.limit(rpm=args.rpm, tpm=args.tpm)
    print(api.url, flush=True)
    try:
        api._server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
