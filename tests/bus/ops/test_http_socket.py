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
    """Ten GETs on one kept-alive connection to a uvicorn server on that socket take well under the
    ~40 ms per request a Nagle/delayed-ACK stall costs (it cost 44 ms each before the fix)."""

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
            started = time.perf_counter()
            for _ in range(10):
                client.get(f"http://127.0.0.1:{port}/")
            took = time.perf_counter() - started
        assert took < 0.2, f"10 kept-alive requests took {took * 1000:.0f} ms"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
