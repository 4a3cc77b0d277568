"""A small keep-alive HTTP/1.1 connection pool for the UCD: asyncio Protocols, httptools.

Why: a profiled served gateway spent 28 % of its CPU in the UCD HTTP client stack
(aiohttp 14 %, httpx's models 13 %, the bridge between them 1 %) for a call that is one
small JSON POST and one small JSON answer on a kept-alive connection. This pool writes
the request in one ``transport.write`` and parses the answer with httptools (llhttp, the
parser uvicorn uses), so a call costs a handful of Python frames.

What it keeps of a pooled client (httpx's ``AsyncHTTPTransport`` is the reference):

* at most ``max_connections`` connections; a caller waits for one up to the pool timeout
  (``httpx.PoolTimeout``). Idle connections are reused most recent first and closed
  after ``keepalive_expiry`` seconds idle.
* connect timeout (``httpx.ConnectTimeout``), refused or unresolvable (``ConnectError``);
  TLS for ``https`` with httpx's default context (certifi, hostname checked), a bad
  certificate is a ``ConnectError`` as in httpx.
* answers framed by Content-Length, chunked, or the end of the connection; 1xx skipped.
* an idle connection the server closed (Connection: close, its keep-alive timeout) is
  noticed before any byte is written, and another one is taken: nothing was sent, so
  that is safe for every request. Once bytes are written, a reset is ``httpx.ReadError``
  (caused by ``ConnectionResetError``), an end without an answer
  ``httpx.RemoteProtocolError`` and a silent server ``httpx.ReadTimeout`` (each read
  waits at most the read timeout): the exceptions httpx raises, so ``UcdClient``
  classifies "not sent" and "maybe sent" alike through every transport.

It does no redirects (``UcdClient`` never follows one), no HTTP/2, no proxies, no
cookies: ``transport.py`` offers it to httpx as a transport too, where httpx does those.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import zlib
from typing import Final, cast

import httptools
import httpx

#: Bytes of a body written with the head in one ``write`` (one copy); larger bodies (E1
#: batches up to 5 MB) are handed over as a second buffer instead of being copied.
_JOIN_BELOW: Final = 65_536


class LeanAnswer:
    """One answer: status, headers as received, body as received (still encoded)."""

    __slots__ = (
        "_content",
        "_headers",
        "encoding",
        "raw_body",
        "raw_headers",
        "sets_cookies",
        "status_code",
    )

    def __init__(
        self,
        status_code: int,
        raw_headers: list[tuple[bytes, bytes]],
        raw_body: bytes,
        encoding: bytes | None,
        sets_cookies: bool,
    ) -> None:
        self.status_code = status_code
        self.raw_headers = raw_headers
        self.raw_body = raw_body
        #: Content-Encoding, lower case; None when absent.
        self.encoding = encoding
        #: A Set-Cookie (or Set-Cookie2) header came with it.
        self.sets_cookies = sets_cookies
        self._headers: dict[str, str] | None = None
        self._content: bytes | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Headers by lower-case name (repeats joined with ", "), built when first read:
        the client reads one only for a 429's Retry-After."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for name, value in self.raw_headers:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            self._headers = headers
        return self._headers

    @property
    def content(self) -> bytes:
        """The body, decoded when the server sent it gzip or deflate compressed (once;
        ``httpx.DecodingError`` when it does not decode)."""
        if self._content is None:
            self._content = decoded(self.raw_body, self.encoding)
        return self._content


def decoded(body: bytes, encoding: bytes | None) -> bytes:
    """``body`` without its Content-Encoding (gzip, deflate; identity as it is).

    >>> decoded(zlib.compress(b"{}"), b"deflate"), decoded(b"{}", None)
    (b'{}', b'{}')
    """
    if encoding is None or encoding == b"identity" or not body:
        return body
    try:
        if encoding in (b"gzip", b"x-gzip"):
            return zlib.decompress(body, wbits=zlib.MAX_WBITS | 16)
        if encoding == b"deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:  # raw deflate, without the zlib wrapper (as httpx accepts)
                return zlib.decompress(body, wbits=-zlib.MAX_WBITS)
    except zlib.error as exc:
        raise httpx.DecodingError(f"the UCD sent a body that is not valid {encoding!r}") from exc
    return body  # an encoding the gateway never asked for: left as it is (as httpx does)


class LeanConnection(asyncio.Protocol):
    """One HTTP/1.1 connection: one exchange at a time, kept alive between them."""

    def __init__(self, pool: LeanPool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[LeanAnswer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout: float | None = None
        self._last_read = 0.0
        self._reset_message()
        #: No longer usable: closed by either side, or an exchange did not finish.
        self.closed = False
        #: The exchange under way has received the head of its answer (the status line
        #: and headers): a timeout now is "did not finish its answer".
        self.answering = False
        #: The last exchange ended with a complete answer and the server keeps the
        #: connection open: it goes back to the pool.
        self.reusable = False
        #: When it was last put back (the loop's clock), for ``keepalive_expiry``.
        self.idle_since = 0.0

    def _reset_message(self) -> None:
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._framed = False  # Content-Length or Transfer-Encoding: not delimited by close
        self._encoding: bytes | None = None
        self._cookies = False
        self._status = 0

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for (on an idle connection): it cannot be trusted.
            self.close()
            return
        if self._read_timeout is not None:
            self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"the UCD's answer is not HTTP/1.1: {exc}"), exc)
            self.close()

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)
        self._pool.forget(self)

    # --- httptools callbacks ---------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length" or lower == b"transfer-encoding":
            self._framed = True
        elif lower == b"content-encoding":
            self._encoding = value.strip().lower()
        elif lower == b"set-cookie" or lower == b"set-cookie2":
            self._cookies = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self.answering = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # 100 Continue and friends: the answer follows
            self._reset_message()
            self.answering = False
            return
        self.reusable = self._parser.should_keep_alive()
        self._complete()

    # --- one exchange --------------------------------------------------------------------

    def exchange(
        self, head: bytes, body: bytes | None, read_timeout: float | None
    ) -> asyncio.Future[LeanAnswer]:
        """Write one request (``head`` ends with the blank line) and return the future of
        its answer. Called right after ``LeanPool.acquire``, with no await in between, so
        the connection is open: acquire checked it."""
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            raise httpx.ConnectError("the UCD connection closed before the request was written")
        waiter = self._waiter = self._loop.create_future()
        self.answering = False
        self.reusable = False
        if body is None:
            transport.write(head)
        elif len(body) < _JOIN_BELOW:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        self._read_timeout = read_timeout
        if read_timeout is not None:
            self._last_read = self._loop.time()
            self._timer = self._loop.call_at(self._last_read + read_timeout, self._check_reads)
        return waiter

    def _check_reads(self) -> None:
        """The read timeout's timer: fires ``read_timeout`` after the last bytes came in."""
        waiter = self._waiter
        if waiter is None or waiter.done() or self._read_timeout is None:
            return
        due = self._last_read + self._read_timeout
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check_reads)
            return
        self._fail(httpx.ReadTimeout("the UCD sent nothing within the read timeout"), None)
        self.close()

    def _complete(self) -> None:
        waiter = self._waiter
        body = self._body
        answer = LeanAnswer(
            self._status,
            self._headers,
            body[0] if len(body) == 1 else b"".join(body),
            self._encoding,
            self._cookies,
        )
        self._reset_message()
        self._stop_timer()
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def _ended(self, exc: Exception | None) -> None:
        """The server closed its side (or the connection broke): the answer under way, if
        any, ends here."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.closed = True
            return
        if self.answering and not self._framed and exc is None:
            self.reusable = False
            self._complete()  # an answer delimited by the end of the connection
        elif isinstance(exc, OSError):
            self._fail(httpx.ReadError(f"the connection to the UCD failed: {exc}"), exc)
        elif self.answering:
            message = "the UCD closed the connection without sending the whole answer"
            self._fail(httpx.RemoteProtocolError(message), exc)
        else:
            message = "the UCD closed the connection without sending an answer"
            self._fail(httpx.RemoteProtocolError(message), exc)
        self.closed = True

    def _fail(self, error: httpx.TransportError, cause: BaseException | None) -> None:
        self._stop_timer()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            error.__cause__ = cause
            waiter.set_exception(error)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def usable(self, now: float, keepalive_expiry: float) -> bool:
        """Open on both sides and idle for less than ``keepalive_expiry`` seconds."""
        transport = self._transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < keepalive_expiry
        )

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self._transport is not None:
            self._transport.close()


class LeanPool:
    """Connections to one origin (scheme, host, port), at most ``max_connections``."""

    def __init__(
        self,
        url: httpx.URL,
        *,
        max_connections: int,
        keepalive_expiry: float = 30.0,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        pool_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if url.scheme not in ("http", "https"):
            raise ValueError(f"the UCD base URL must be http or https, not {url.scheme!r}")
        self.host = url.host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if url.scheme == "https":
            self._ssl = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        self._max = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: collections.deque[LeanConnection] = collections.deque()
        self._keepalive_expiry = keepalive_expiry
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_timeout = pool_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Connections opened so far (tests see reuse with it).
        self.opened = 0
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def request(
        self,
        head: bytes,
        body: bytes | None,
        *,
        read_timeout: float | None = None,
        connect_timeout: float | None = None,
        pool_timeout: float | None = None,
    ) -> LeanAnswer:
        """One exchange on a pooled connection (what httpx's transport seam calls)."""
        connection = await self.acquire(connect_timeout=connect_timeout, pool_timeout=pool_timeout)
        try:
            return await connection.exchange(head, body, read_timeout)
        finally:
            self.release(connection)

    async def acquire(
        self, *, connect_timeout: float | None = None, pool_timeout: float | None = None
    ) -> LeanConnection:
        """A slot and a connection: the most recently used idle one, or a new one.

        An idle connection the server closed (its keep-alive timeout, Connection: close)
        is dropped here, before anything is written on it, and the next one is tried:
        that is safe for every request, since none of it was sent. The caller must write
        at once (``LeanConnection.exchange``) and hand it back with ``release`` whatever
        happens.
        """
        if self._closed:
            raise httpx.ConnectError("the UCD connection pool is closed")
        slots = self._slots
        if slots.locked():
            timeout = pool_timeout if pool_timeout is not None else self.pool_timeout
            try:
                async with asyncio.timeout(timeout):
                    await slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no UCD connection became free in time") from None
        else:
            await slots.acquire()  # free: returns without suspending
        try:
            idle = self._idle
            now = self.loop.time()
            while idle:
                connection = idle.pop()
                if connection.usable(now, self._keepalive_expiry):
                    return connection
                connection.close()
            return await self._connect(connect_timeout)
        except BaseException:
            slots.release()
            raise

    def release(self, connection: LeanConnection) -> None:
        """Back to the pool if its answer was complete and it stays open; else closed."""
        self._slots.release()
        if connection.reusable and not connection.closed and not self._closed:
            connection.reusable = False
            connection.idle_since = self.loop.time()
            self._idle.append(connection)
        else:
            connection.close()

    def forget(self, connection: LeanConnection) -> None:
        """A connection closed: out of the idle list, if it was there."""
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)

    async def _connect(self, seconds: float | None) -> LeanConnection:
        if seconds is None:
            seconds = self.connect_timeout
        try:
            async with asyncio.timeout(seconds):
                _, connection = await self.loop.create_connection(
                    lambda: LeanConnection(self),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                "no connection to the UCD within the connect timeout"
            ) from None
        except OSError as exc:  # refused, unreachable, unresolvable, TLS (ssl.SSLError)
            raise httpx.ConnectError(f"could not connect to the UCD: {exc}") from exc
        self.opened += 1
        return connection

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
