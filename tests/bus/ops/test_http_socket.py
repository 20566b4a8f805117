"""The socket `mesh run` serves HTTP on: responses on kept-alive connections are not held back."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from bus.ops.cli.running import _listen


def test_the_listening_socket_has_tcp_nodelay_so_accepted_connections_do():
    """Accepted connections inherit TCP_NODELAY from the listening socket; asyncio would not set it
    (the socket's `proto` is 0), and each kept-alive response then waited for a delayed ACK."""
    listening = _listen("127.0.0.1", 0)
    try:
        assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        listening.close()


def test_kept_alive_requests_are_answered_without_the_delayed_ack_stall():
    """GETs on one kept-alive connection to a uvicorn server on that socket are not held for the
    ~40 ms a Nagle/delayed-ACK stall costs (it cost 44 ms each before the fix). The stall is a
    kernel timer on every request, so even the quickest would show it; load only slows the others."""

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

    listening = _listen("127.0.0.1", 0)
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))

    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        with httpx.Client() as client:
            client.get(f"http://127.0.0.1:{port}/")
            took = []
            for _ in range(20):
                started = time.perf_counter()
                client.get(f"http://127.0.0.1:{port}/")
                took.append(time.perf_counter() - started)
        assert min(took) < 0.03, f"the quickest of 20 kept-alive requests took {min(took) * 1000:.0f} ms"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
