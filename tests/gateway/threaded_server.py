"""A test's own HTTP server (a JWKS endpoint, an OTLP receiver) run by uvicorn in a
thread on a free loopback port, for as long as a block lasts.

The socket is bound first, so the server's own URL is known before its app is built
(the JWKS documents and the receiver name it)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

__all__ = ["loopback_socket", "serving_in_thread", "url_of"]


def loopback_socket() -> socket.socket:
    """A socket bound to a free loopback port (``serving_in_thread`` closes it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextlib.contextmanager
def serving_in_thread(config: uvicorn.Config, sock: socket.socket, what: str) -> Iterator[None]:
    """Serve ``config`` on ``sock`` in a thread until the block ends (``what`` names the
    server when it does not start within 10 s). uvicorn installs no signal handler
    outside the main thread, so pytest keeps its own."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
