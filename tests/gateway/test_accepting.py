"""The servers' loop accepts every waiting connection on one turn (gateway/accepting.py).

uvloop (libuv ≥ 1.45) accepts one connection per turn; a saturated gateway turns its loop
every 10-50 ms, so 1,000 new connections waited up to 10 s in the accept queue in issue
7's overload run. The tests count turns, not time: each ``asyncio.sleep(0)`` is one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from gateway import accepting, tuning
from gateway.accepting import BatchAcceptingLoop, BatchAcceptor
from gateway.listening import listening_socket

CLIENTS = 50
TURNS = 10


class _Made(list[asyncio.Transport]):
    """The transports of the connections made so far; ``some`` is set at the first."""

    def __init__(self) -> None:
        super().__init__()
        self.some = asyncio.Event()

    async def first(self) -> asyncio.Transport:
        await asyncio.wait_for(self.some.wait(), timeout=5)
        return self[0]


class _Counted(asyncio.Protocol):
    made: _Made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)  # type: ignore[arg-type]
        self.made.some.set()


def _counting() -> tuple[Callable[[], _Counted], _Made]:
    made = _Made()

    def factory() -> _Counted:
        protocol = _Counted()
        protocol.made = made
        return protocol

    return factory, made


def _run(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, Any]) -> Any:
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


def _connect_waiting(port: int, count: int) -> list[socket.socket]:
    """``count`` connections the kernel completed, waiting in the accept queue."""
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port))
        clients.append(client)
    return clients


async def _accepted_after_turns(sock: socket.socket, turns: int) -> int:
    loop = asyncio.get_running_loop()
    factory, made = _counting()
    server = await loop.create_server(factory, sock=sock, backlog=256)
    clients = _connect_waiting(sock.getsockname()[1], CLIENTS)
    try:
        for _ in range(turns):
            await asyncio.sleep(0)
        return len(made)
    finally:
        server.close()
        for client in clients:
            client.close()
        for transport in made:
            transport.close()


def test_the_cli_loop_accepts_every_waiting_connection_within_a_few_turns() -> None:
    assert isinstance(tuning.event_loop_factory()(), BatchAcceptingLoop)
    sock = listening_socket("127.0.0.1", 0, backlog=256)
    assert _run(accepting.new_event_loop(), _accepted_after_turns(sock, TURNS)) == CLIENTS


def test_plain_uvloop_accepts_one_connection_a_turn() -> None:
    """Why the loop exists: the same count on uvloop's own server."""
    sock = listening_socket("127.0.0.1", 0, backlog=256)
    accepted = _run(uvloop.new_event_loop(), _accepted_after_turns(sock, TURNS))
    assert accepted <= TURNS < CLIENTS


def test_accepted_connections_have_nodelay_even_on_a_socket_without_the_protocol() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0: the loop would skip it
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        factory, made = _counting()
        server = await loop.create_server(factory, sock=sock)
        client = socket.create_connection(sock.getsockname())
        try:
            server_side: socket.socket = (await made.first()).get_extra_info("socket")
            return server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            server.close()
            client.close()
            made[0].close()

    assert _run(accepting.new_event_loop(), main()) == 1


def test_a_closed_server_stops_accepting_and_closes_its_socket() -> None:
    sock = listening_socket("127.0.0.1", 0, backlog=8)
    port = sock.getsockname()[1]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        factory, _ = _counting()
        server = await loop.create_server(factory, sock=sock)
        assert server.is_serving()
        assert server.sockets == (sock,)
        assert server.get_loop() is loop
        server.close()
        server.close()  # twice is once
        await server.wait_closed()
        assert not server.is_serving()
        assert not server.sockets
        await server.start_serving()  # a closed server stays closed
        assert not server.is_serving()
        assert sock.fileno() == -1
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)

    _run(accepting.new_event_loop(), main())


def test_a_server_created_without_serving_starts_when_asked() -> None:
    sock = listening_socket("127.0.0.1", 0, backlog=8)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        factory, made = _counting()
        server = await loop.create_server(factory, sock=sock, start_serving=False)
        assert not server.is_serving()
        client = socket.create_connection(sock.getsockname())
        try:
            for _ in range(TURNS):
                await asyncio.sleep(0)
            assert made == []
            await server.start_serving()
            await server.start_serving()  # twice is once
            await made.first()
            return len(made)
        finally:
            server.close()
            client.close()
            for transport in made:
                transport.close()

    assert _run(accepting.new_event_loop(), main()) == 1


def test_servers_on_a_host_and_port_are_uvloops_own() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        factory, _ = _counting()
        server = await loop.create_server(factory, host="127.0.0.1", port=0)
        assert not isinstance(server, BatchAcceptor)
        server.close()
        await server.wait_closed()

    _run(accepting.new_event_loop(), main())


class _Failing:
    """A listening socket whose next accepts fail with ``errnos``, then accept for real."""

    def __init__(self, sock: socket.socket, errnos: list[int]) -> None:
        self._sock = sock
        self._errnos = errnos
        self.accepts = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def close(self) -> None:
        self._sock.close()

    def accept(self) -> tuple[socket.socket, Any]:
        self.accepts += 1
        if self._errnos:
            raise OSError(self._errnos.pop(0), "simulated")
        return self._sock.accept()


def _serve_failing(errnos: list[int], main: Callable[..., Coroutine[Any, Any, Any]]) -> Any:
    sock = listening_socket("127.0.0.1", 0, backlog=8)
    failing = _Failing(sock, errnos)
    loop = accepting.new_event_loop()
    assert isinstance(loop, BatchAcceptingLoop)
    factory, made = _counting()
    server = BatchAcceptor(loop, failing, factory)  # type: ignore[arg-type]

    async def run() -> Any:
        client = socket.create_connection(sock.getsockname())
        try:
            return await main(server, failing, made)
        finally:
            server.close()
            client.close()
            for transport in made:
                transport.close()

    return _run(loop, run())


def test_a_connection_gone_before_its_accept_is_skipped() -> None:
    async def main(server: BatchAcceptor, failing: _Failing, made: _Made) -> None:
        server.start()
        await made.first()
        assert failing.accepts >= 2  # the aborted one, then the real one in the same turn

    _serve_failing([errno.ECONNABORTED], main)


def test_out_of_descriptors_pauses_accepting_then_retries(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(accepting, "RETRY_AFTER_EMFILE_S", 0.05)

    async def main(server: BatchAcceptor, failing: _Failing, made: _Made) -> None:
        server.start()
        for _ in range(TURNS):
            await asyncio.sleep(0)
        assert not server.is_serving()
        assert made == []
        assert failing.accepts == 1
        await made.first()  # the retry, 0.05 s later, accepts the waiting connection

    with caplog.at_level(logging.WARNING, logger="gateway.accepting"):
        _serve_failing([errno.EMFILE], main)
    assert [r.getMessage() for r in caplog.records] == [
        "cannot accept connections (EMFILE); retrying in 0.05 s"
    ]


def test_any_other_accept_failure_is_raised() -> None:
    async def main(server: BatchAcceptor, failing: _Failing, made: _Made) -> None:
        with pytest.raises(OSError, match="simulated"):
            server.accept_waiting()

    _serve_failing([errno.EINVAL], main)
