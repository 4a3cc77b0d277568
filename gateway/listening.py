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
"""

from __future__ import annotations

import socket

__all__ = ["listening_socket"]


def listening_socket(host: str, port: int, *, backlog: int) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port`` (``port`` 0: any free one).

    Raises ``OSError`` (port taken, address not available) with the socket closed.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
