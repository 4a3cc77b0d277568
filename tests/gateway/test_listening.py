"""TCP_NODELAY on every connection the project's servers accept (gateway/listening.py).

Without it every keep-alive response after the first waited ~44 ms for the client's
delayed ACK (uvicorn writes headers and body in two sends). The tests check the
mechanism on a real loopback connection, and that no server binds a socket any other way.
"""

from __future__ import annotations

import ast
import asyncio
import socket
from pathlib import Path

import pytest

from gateway import cli
from gateway.listening import listening_socket, reserved_port

PACKAGE = Path(cli.__file__).resolve().parent


async def _nodelay_of_accepted(sock: socket.socket) -> int:
    """Accepts one loopback connection through asyncio, as uvicorn does on its default
    loop, and reads TCP_NODELAY on the server's side of it."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_side: socket.socket = writer.get_extra_info("socket")
        seen.set_result(server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    async with server:
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        nodelay = await asyncio.wait_for(seen, timeout=5)
        writer.close()
    return nodelay


@pytest.mark.parametrize("reuse_port", [False, True], ids=["one-process", "workers"])
async def test_connections_accepted_on_a_listening_socket_have_nodelay(reuse_port: bool) -> None:
    """Also on each worker's socket of ``serve --workers N`` (SO_REUSEPORT)."""
    sock = listening_socket("127.0.0.1", 0, backlog=8, reuse_port=reuse_port)
    assert sock.proto == socket.IPPROTO_TCP
    assert await _nodelay_of_accepted(sock) == 1


def test_workers_share_the_port_the_supervisor_reserved() -> None:
    reserved = reserved_port("127.0.0.1", 0)
    port = reserved.getsockname()[1]
    first = listening_socket("127.0.0.1", port, backlog=8, reuse_port=True)
    second = listening_socket("127.0.0.1", port, backlog=8, reuse_port=True)
    try:
        assert {s.proto for s in (reserved, first, second)} == {socket.IPPROTO_TCP}
        with pytest.raises(OSError, match="in use"):  # not without SO_REUSEPORT
            listening_socket("127.0.0.1", port, backlog=8)
    finally:
        for sock in (reserved, first, second):
            sock.close()


async def test_a_socket_made_without_the_protocol_gets_no_nodelay() -> None:
    """Why the protocol is named: asyncio leaves a proto-0 socket's connections alone."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    assert await _nodelay_of_accepted(sock) == 0


def test_the_cli_servers_listen_on_such_a_socket() -> None:
    """``serve`` and ``local-ucd`` bind through ``cli._bind``."""
    sock = cli._bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_no_server_of_the_project_binds_a_socket_any_other_way() -> None:
    """Only gateway/listening.py makes sockets, and every uvicorn server of the project
    (``serve``, ``local-ucd``, the embedded local UCD) is handed one to serve on."""
    made_elsewhere: list[str] = []
    served_without_sockets: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(PACKAGE))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            func = node.func
            if (
                func.attr == "socket"
                and isinstance(func.value, ast.Name)
                and func.value.id == "socket"
                and where != "listening.py"
            ):
                made_elsewhere.append(f"{where}:{node.lineno}")
            # ``super().serve(sockets)`` (gateway/drain.py) passes them on positionally.
            handed = bool(node.args) or any(k.arg == "sockets" for k in node.keywords)
            if func.attr == "serve" and not handed:
                served_without_sockets.append(f"{where}:{node.lineno}")
    assert made_elsewhere == []
    assert served_without_sockets == []
