"""A tiny real HTTP server standing in for a Slack incoming webhook: it records each POST and
answers with the statuses it is told to, then 200 `ok`.

    with WebhookReceiver(answers=[503, 503]) as hook:   # two failures, then success
        ... MESH_DIGEST_WEBHOOK_URL=hook.url ...
        assert hook.bodies[-1]["text"].startswith("Mesh digest")
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    def __init__(
        self,
        answers: list[int] | None = None,
        *,
        always: int | None = None,
        headers: dict | None = None,
        delay: float = 0.0,
    ):
        self.answers = deque(answers or [])
        self.delay = delay
        self.always = always
        self.headers = headers or {}
        self.requests: list[tuple[float, str, Any]] = []  # (monotonic time, path, JSON body)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.requests.append((time.monotonic(), self.path, json.loads(body or b"null")))
                    status = receiver.answers.popleft() if receiver.answers else (receiver.always or 200)
                time.sleep(receiver.delay)
                text = b"ok" if status < 300 else b"no_service" if status == 404 else b"unavailable"
                self.send_response(status)
                for key, value in receiver.headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/services/T000/B000/secret-token"

    @property
    def bodies(self) -> list[Any]:
        with self.lock:
            return [body for _, _, body in self.requests]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
