"""The servers' event loop: uvloop, accepting every waiting connection on each turn.

libuv (1.45 and later, under uvloop 0.18 and later) accepts **one** connection per turn of
the event loop (libuv pull request 3696: "don't accept() connections in a loop"). An idle
server turns its loop thousands of times a second, so that costs nothing; a saturated
gateway turns it every 10-50 ms, because each turn runs every ready callback of hundreds
of requests. It then took ~80 new connections a second: in issue 7's overload run
(2 × saturation, up to 1,024 connections), the accept queue held ~1,000 connections for
10 s, and every request on a new connection, a load-balancer health check or a
``/readyz`` probe among them, waited 1-10 s *before the gateway saw it*, refused or not
(``ss -lnt``: Recv-Q ~1,000 on the listening socket; ``strace``: one ``accept4`` per
``epoll_pwait``).

``BatchAcceptingLoop.create_server(sock=...)`` serves a listening socket the way asyncio's
own loop does instead: the socket's readiness runs ``BatchAcceptor.accept_waiting``, which
accepts up to ``ACCEPTS_PER_TURN`` connections, each handed to uvloop's
``connect_accepted_socket`` (uvloop's transport and protocol calls, as before). A turn
costs one ``accept4`` per waiting connection plus one that finds none; a new connection
on a saturated gateway now waits one turn, and load shedding answers it at once.
Everything else (host/port servers, TLS, clients) is uvloop's own.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any, Final

import uvloop

__all__ = ["ACCEPTS_PER_TURN", "BatchAcceptingLoop", "BatchAcceptor", "new_event_loop"]

#: At most this many connections accepted per turn (asyncio's own loop takes its
#: ``backlog``, 100 by default); the rest wait for the next turn, so a flood of new
#: connections cannot keep the loop from the requests it already holds.
ACCEPTS_PER_TURN: Final = 128

#: Out of file descriptors: stop accepting for this long (asyncio's ACCEPT_RETRY_DELAY),
#: rather than spin on a listening socket that stays readable.
RETRY_AFTER_EMFILE_S: Final = 1.0

#: A connection that went away while it waited in the queue: skip it, accept the next.
_GONE: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.ECONNRESET})
_OUT_OF_DESCRIPTORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

logger = logging.getLogger("gateway.accepting")


class BatchAcceptor(asyncio.AbstractServer):
    """A listening socket served by ``loop``'s reader callback, many connections a turn.

    Closing stops accepting and closes the socket, as ``asyncio.Server.close`` does (a
    worker of ``serve --workers`` then leaves its SO_REUSEPORT group at once).
    """

    def __init__(
        self,
        loop: uvloop.Loop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self._loop = loop
        self._sock = sock
        sock.setblocking(False)
        self._protocol_factory = protocol_factory
        self._serving = False
        self._closed = False
        self._retry: asyncio.TimerHandle | None = None
        # The tasks of connections being handed over, kept so none is collected early.
        self._handing_over: set[asyncio.Task[Any]] = set()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed else (self._sock,)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        self.start()

    def start(self) -> None:
        if self._serving or self._closed:
            return
        self._serving = True
        self._loop.add_reader(self._sock.fileno(), self.accept_waiting)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pause()
        self._sock.close()

    async def wait_closed(self) -> None:
        # Like asyncio's server in 3.12: the listener is gone once ``close`` returns;
        # uvicorn waits for the connections themselves.
        return

    async def serve_forever(self) -> None:
        self.start()
        await asyncio.Event().wait()

    def accept_waiting(self) -> None:
        """Accept what waits, up to ``ACCEPTS_PER_TURN``; the reader callback."""
        for _ in range(ACCEPTS_PER_TURN):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _GONE:
                    continue
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    # The connections wait in the kernel's queue until descriptors free up.
                    logger.warning(
                        "cannot accept connections (%s); retrying in %g s",
                        errno.errorcode.get(exc.errno or 0, "error"),
                        RETRY_AFTER_EMFILE_S,
                    )
                    self._pause()
                    self._retry = self._loop.call_later(RETRY_AFTER_EMFILE_S, self.start)
                    return
                raise
            self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        # Named here, not left to the loop: uvicorn writes a response's head and body in
        # two sends, which must not wait for the client's delayed ACK (listening.py).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._connect(conn))
        self._handing_over.add(task)
        task.add_done_callback(self._handing_over.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn)
        except OSError:
            # Reset between accept and hand-over: nothing to serve.
            conn.close()

    def _pause(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._serving:
            self._serving = False
            self._loop.remove_reader(self._sock.fileno())


class BatchAcceptingLoop(uvloop.Loop):
    """uvloop, with servers on a given listening socket accepted by ``BatchAcceptor``."""

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        *,
        sock: socket.socket | None = None,
        ssl: Any = None,
        start_serving: bool = True,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        if sock is None or ssl is not None or host is not None or port is not None:
            return await super().create_server(
                protocol_factory,
                host,
                port,
                sock=sock,
                ssl=ssl,
                start_serving=start_serving,
                **kwargs,
            )
        # ``backlog`` (uvicorn passes one) is the socket's already: listening.py set it.
        server = BatchAcceptor(self, sock, protocol_factory)
        if start_serving:
            server.start()
        return server


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop factory of every server the CLI starts (``tuning.event_loop_factory``)."""
    return BatchAcceptingLoop()
