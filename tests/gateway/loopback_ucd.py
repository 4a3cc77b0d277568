"""A loopback HTTP server that plays a UCD whose endpoints behave as a test chooses.

Real sockets, so the gateway's production transports, pools and timeouts are what is
tested. Each path has a behaviour that the test may change while the server runs:

    "ok"      200 with that path's body (``OK_BODIES``)
    "500"     500 {"success": false, "message": "unknown error"}
    "400"     400 {"error": "bad request"}
    "429"     429 with Retry-After: 1
    "reset"   the connection is reset (TCP RST) after the request is read
    "drop"    the connection is closed (TCP FIN) after the request is read, no answer
    "hang"    no answer until the server stops
    "trickle" a 200 answer of 1,000 bytes is started, then one byte every 0.2 s

and, for the framings and connection endings an HTTP client must read (each answers 200
with the path's body):

    "close"      with ``Connection: close``, then the connection is closed
    "idle-close" as "ok", then the connection is closed without a word (a server's
                 keep-alive timeout, early)
    "chunked"    ``Transfer-Encoding: chunked``, the body in three chunks
    "gzip"       ``Content-Encoding: gzip``
    "bad-gzip"   ``Content-Encoding: gzip`` on a body that is not gzip
    "eof"        no length: the body ends when the connection does
    "continue"   a ``100 Continue`` first
    "cookie"     with ``Set-Cookie: lb=node-1``
    "garbage"    bytes that are not HTTP, then the connection is closed
    "short"      a Content-Length of 1,000, a few bytes of body, then the end
    "chatty"     as "ok", then stray bytes on the idle connection 50 ms later

Every request read is counted per path (``LoopbackUcd.seen``), so tests count calls on
the wire; the request heads are kept in order (``LoopbackUcd.heads``) and so is the
connection each came on (``LoopbackUcd.connections``). ``ssl=`` serves HTTPS.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl as tls
import struct
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final, Literal

import orjson

from gateway.ucd.paths import METADATA_COLUMNS_PATH, PROFILE_PATH, UPSERT_PATH

Behaviour = Literal[
    "ok",
    "500",
    "400",
    "429",
    "reset",
    "drop",
    "hang",
    "trickle",
    "close",
    "idle-close",
    "chunked",
    "gzip",
    "bad-gzip",
    "eof",
    "continue",
    "cookie",
    "garbage",
    "short",
    "chatty",
]

OK_BODIES: Final[dict[str, object]] = {
    PROFILE_PATH: {"attributes": {"name": "Ada"}},
    UPSERT_PATH: {"data": {"successful": {"count": 1}, "fail": {}}},
    METADATA_COLUMNS_PATH: [{"key": "name", "type": "string"}],
}

_ANSWERS: Final[dict[str, tuple[str, object, str]]] = {
    "500": ("500 Internal Server Error", {"success": False, "message": "unknown error"}, ""),
    "400": ("400 Bad Request", {"error": "bad request"}, ""),
    "429": ("429 Too Many Requests", {"error": "too many requests"}, "Retry-After: 1\r\n"),
}


async def _trickle(writer: asyncio.StreamWriter, done: asyncio.Event) -> None:
    """Start a 200 answer of 1,000 bytes, then send one byte every 0.2 s until ``done``."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    writer.write(b"Content-Length: 1000\r\n\r\n")
    while not done.is_set():
        writer.write(b" ")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.2)


def _answer(behaviour: Behaviour, status: str, content: bytes, extra: str) -> bytes:
    """The bytes of an answer with ``content``, framed as ``behaviour`` says."""
    if behaviour == "gzip":
        content = gzip.compress(content)
        extra += "Content-Encoding: gzip\r\n"
    elif behaviour == "bad-gzip":
        extra += "Content-Encoding: gzip\r\n"
    elif behaviour == "close":
        extra += "Connection: close\r\n"
    elif behaviour == "cookie":
        extra += "Set-Cookie: lb=node-1; Path=/\r\n"
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
    if behaviour == "continue":
        head = "HTTP/1.1 100 Continue\r\n\r\n" + head
    if behaviour == "eof":
        return f"{head}\r\n".encode() + content
    if behaviour == "chunked":
        third = len(content) // 3 + 1
        pieces = [content[i : i + third] for i in range(0, len(content), third)]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
        return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n"
    return f"{head}Content-Length: {len(content)}\r\n\r\n".encode() + content


@dataclass
class LoopbackUcd:
    url: str
    #: What each path does now; a path not listed does what ``every`` says.
    behaviours: dict[str, Behaviour]
    #: What every other path does (any path, not only the three named ones).
    every: Behaviour = "ok"
    #: Requests read, per path.
    seen: Counter[str] = field(default_factory=Counter)
    #: Every request head read, in order.
    heads: list[bytes] = field(default_factory=list)
    #: For each request read, the number of the connection it came on (from 1).
    connections: list[int] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Requests read, over every path."""
        return sum(self.seen.values())


@contextlib.asynccontextmanager
async def loopback_ucd(
    every: Behaviour = "ok", *, ssl: tls.SSLContext | None = None, **behaviours: Behaviour
) -> AsyncIterator[LoopbackUcd]:
    """Keyword names are ``profile``, ``upsert`` and ``metadata``, e.g. profile="hang";
    ``every`` is what any other path does, e.g. every="reset"."""
    paths = {"profile": PROFILE_PATH, "upsert": UPSERT_PATH, "metadata": METADATA_COLUMNS_PATH}
    done = asyncio.Event()
    ucd = LoopbackUcd("", {paths[name]: b for name, b in behaviours.items()}, every)
    opened = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        connection = opened
        try:
            while not done.is_set():  # keep-alive: one connection serves many requests
                head = await reader.readuntil(b"\r\n\r\n")
                ucd.heads.append(head)
                ucd.connections.append(connection)
                path = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                ucd.seen[path] += 1
                behaviour = ucd.behaviours.get(path, ucd.every)
                if behaviour == "hang":
                    await done.wait()
                    break
                if behaviour == "drop":
                    break
                if behaviour == "trickle":
                    await _trickle(writer, done)
                    break
                if behaviour == "reset":
                    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if behaviour == "garbage":
                    writer.write(b"this is not HTTP\r\n\r\n")
                    await writer.drain()
                    break
                if behaviour == "short":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{")
                    await writer.drain()
                    break
                status, body, extra = _ANSWERS.get(behaviour, ("200 OK", OK_BODIES[path], ""))
                writer.write(_answer(behaviour, status, orjson.dumps(body), extra))
                await writer.drain()
                if behaviour in ("close", "idle-close", "eof"):
                    break
                if behaviour == "chatty":
                    await asyncio.sleep(0.05)
                    writer.write(b"stray bytes")
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl)
    scheme = "https" if ssl is not None else "http"
    ucd.url = f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield ucd
    finally:
        done.set()
        await asyncio.sleep(0.05)  # let the handlers close their connections
        server.close()
        await server.wait_closed()
