"""The listening socket of every server the project starts (``serve``, ``local-ucd``, the
embedded local UCD).

Bound here rather than by uvicorn so that a taken port is one clear error for the
caller, and port 0 is known before the app is built. It is created with the protocol
named, ``IPPROTO_TCP``, not 0: asyncio sets TCP_NODELAY on an accepted connection only
when the socket says it is TCP (``asyncio.base_events._set_nodelay`` checks
``sock.proto``), and an accepted socket takes the listener's protocol. Without it,
uvicorn's two writes of one response (headers, then body) wait on Nagle's algorithm for
the client's delayed ACK: every keep-alive response after the first took ~44 ms on
loopback (measured with ``http.client`` against all three servers).

``serve --workers N`` gives each worker process a socket of its own on the same port
(``reuse_port``: SO_REUSEPORT, the kernel spreads new connections over them), made here
the same way, so TCP_NODELAY holds for every worker; the supervisor holds the port with
``reserved_port`` (bound, never listening, so no connection waits in it).
"""

from __future__ import annotations

import socket

__all__ = ["listening_socket", "reserved_port"]


def listening_socket(
    host: str, port: int, *, backlog: int, reuse_port: bool = False
) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port`` (``port`` 0: any free one);
    ``reuse_port``: one of several sockets of this user on the port (SO_REUSEPORT).

    Raises ``OSError`` (port taken, address not available) with the socket closed.
    """
    sock = _bound(host, port, reuse_port=reuse_port)
    try:
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def reserved_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT that never listens: it keeps the
    port (0: a free one, now known) for the listening sockets of ``serve``'s workers."""
    return _bound(host, port, reuse_port=True)


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
