"""The one place that builds the pooled ``httpx.AsyncClient`` the gateway talks to the UCD with.

The code speaks httpx everywhere (``AsyncClient``, ``MockTransport`` and ``ASGITransport``
in tests); only the production transport underneath is chosen here
(``UCD_GATEWAY_HTTP_TRANSPORT``):

* ``lean`` (the default): ``LeanTransport``, the small keep-alive pool of ``lean.py``.
  ``UcdClient`` also writes its calls on that pool directly (``UcdHttpClient.direct``),
  without httpx's request and response objects, whenever nothing needs them: no event
  hooks, no cookies, no tracing span. With any of those, the same call goes through
  httpx and this transport, on the same connections. bench/ucd_client.py measures it.
* ``aiohttp``: httpx-aiohttp's transport on aiohttp's pool, ~2.4x the requests/s of
  httpx's default transport on these machines (docs/perf-notes.md).
* ``httpx``: httpx's own transport (httpcore).
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.settings import Settings
from gateway.ucd.lean import LeanAnswer, LeanPool

#: What the direct path accepts: the encodings ``lean.decoded`` undoes (httpx would
#: also offer br and zstd when their packages are installed).
_ACCEPT_ENCODING = b"gzip, deflate"


#: How long an idle connection to the UCD is kept. A server that closes idle connections
#: sooner races the next request written on one: the request may be lost with the
#: connection, and a write then reads as "maybe sent" (UPSTREAM_OUTCOME_UNKNOWN). So the
#: servers the project starts keep theirs open longer (``SERVER_KEEP_ALIVE_S``).
KEEPALIVE_EXPIRY_S: Final = 30.0
#: The keep-alive timeout of the local UCD's servers (``local-ucd``, the embedded one):
#: longer than any client of theirs keeps a connection idle (uvicorn's default is 5 s).
SERVER_KEEP_ALIVE_S: Final = 75


class _SetCookieOnlyCookies(httpx.Cookies):
    """httpx's cookie store, skipping the work for answers that set no cookie.

    httpx hands every response to ``extract_cookies``, which wraps the request and the
    response in urllib's cookie API (a ``urllib.request.Request``, an ``email`` message
    of the headers) before ``http.cookiejar`` finds no Set-Cookie header and returns
    ("no relevant cookie headers: quick exit"): ~7% of the gateway's CPU per UCD call.
    Only Set-Cookie and Set-Cookie2 change the jar, so only those answers go through;
    a UCD (or load balancer) that sets cookies gets them back exactly as before.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)
            self.kept = True

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        super().set(name, value, domain, path)
        self.kept = True

    def update(self, cookies: Any = None) -> None:  # type: ignore[override]
        super().update(cookies)
        self.kept = bool(self)

    #: Cookies may be in the jar: a request must go through httpx, which sends them.
    kept = False


class UcdHttpClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` with ``_SetCookieOnlyCookies`` as its cookie store.

    httpx reads and replaces the store only through the public ``cookies`` property,
    so overriding it is enough; everything else is httpx's own client.
    """

    def __init__(self, *, cookies: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cookies = cookies
        transport = kwargs.get("transport")
        self._lean = transport.pool if isinstance(transport, LeanTransport) else None

    @property
    def cookies(self) -> httpx.Cookies:
        return self._set_cookie_only

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._set_cookie_only = _SetCookieOnlyCookies(cookies)
        self._set_cookie_only.kept = bool(self._set_cookie_only)

    @property
    def direct(self) -> LeanPool | None:
        """The lean pool, when a call may skip httpx's objects: the transport is
        ``LeanTransport``, and no event hook or cookie needs an ``httpx.Request`` or
        ``httpx.Response``. None: send through httpx."""
        lean = self._lean
        if lean is None or self._set_cookie_only.kept:
            return None
        hooks = self.event_hooks
        if hooks["request"] or hooks["response"]:
            return None
        return lean

    def keep_cookies(self, method: str, url: httpx.URL, answer: LeanAnswer) -> None:
        """A direct answer that sets cookies: into the jar as httpx would put it (from
        then on, calls go through httpx, which sends them back)."""
        request = httpx.Request(method, url)
        self.cookies.extract_cookies(
            httpx.Response(answer.status_code, headers=answer.raw_headers, request=request)
        )


def request_head(method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """An HTTP/1.1 request head: request line, ``headers`` as given, the blank line.

    >>> request_head("GET", b"/x", [(b"Host", b"ucd")])
    b'GET /x HTTP/1.1\\r\\nHost: ucd\\r\\n\\r\\n'
    """
    lines = [b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), target)]
    lines.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
    lines.append(b"\r\n")
    return b"".join(lines)


def direct_head_prefix(request: httpx.Request) -> bytes:
    """The head httpx would write for ``request``, without its framing headers and its
    blank line: what a direct call (``UcdClient``) sends before its own Content-Length.

    Built by httpx (Host, User-Agent, the client's and the call's headers, with httpx's
    checks of names and values), once per method and path; only Accept-Encoding is
    narrowed to what the direct path decodes.
    """
    headers = [
        (name, _ACCEPT_ENCODING if lower == b"accept-encoding" else value)
        for name, value in request.headers.raw
        if (lower := name.lower()) not in (b"content-length", b"transfer-encoding")
    ]
    return request_head(request.method, request.url.raw_path, headers)[:-2]


class LeanTransport(httpx.AsyncBaseTransport):
    """``lean.LeanPool`` under httpx's API, for one origin (the UCD's base URL).

    What httpx does above a transport (cookies, event hooks, decoding, tracing headers)
    it still does; this only writes the request and reads the answer. Timeouts come from
    the request's ``timeout`` extension, as for httpx's own transport.
    """

    def __init__(
        self,
        url: httpx.URL | str,
        *,
        limits: httpx.Limits,
        timeout: httpx.Timeout,
        ssl_context: Any = None,
    ) -> None:
        url = httpx.URL(url)
        self.pool = LeanPool(
            url,
            max_connections=limits.max_connections or 100,
            keepalive_expiry=limits.keepalive_expiry or 0.0,
            connect_timeout=timeout.connect,
            read_timeout=timeout.read,
            pool_timeout=timeout.pool,
            ssl_context=ssl_context,
        )
        self._origin = (url.scheme, url.host, self.pool.port)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        default = 443 if url.scheme == "https" else 80
        if (url.scheme, url.host, url.port or default) != self._origin:
            raise httpx.UnsupportedProtocol(
                "the lean transport only calls the UCD's base URL", request=request
            )
        if request.method == "HEAD":  # its answer's length would be read as a body
            raise httpx.UnsupportedProtocol("the lean transport sends no HEAD", request=request)
        body = await request.aread()
        headers = [
            (name, value)
            for name, value in request.headers.raw
            if name.lower() not in (b"content-length", b"transfer-encoding")
        ]
        if body or request.method not in ("GET", "HEAD"):
            headers.append((b"Content-Length", b"%d" % len(body)))
        head = request_head(request.method, url.raw_path, headers)
        timeouts = request.extensions.get("timeout", {})
        try:
            answer = await self.pool.request(
                head,
                body or None,
                read_timeout=timeouts.get("read"),
                connect_timeout=timeouts.get("connect"),
                pool_timeout=timeouts.get("pool"),
            )
        except httpx.TransportError as exc:
            exc.request = request
            raise
        return httpx.Response(
            answer.status_code,
            headers=answer.raw_headers,
            stream=httpx.ByteStream(answer.raw_body),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


class UcdAiohttpTransport(AiohttpTransport):
    """httpx-aiohttp's transport, with connection failures reported as httpx reports them.

    httpx-aiohttp maps every ``aiohttp.ClientConnectionError`` it has no entry for to
    ``httpx.ConnectTimeout``: a refused connection (``ClientConnectorError``), one dropped
    mid-answer (``ServerDisconnectedError``) and one reset by the peer (``ClientOSError``,
    ECONNRESET) would all read as "the request was never sent". httpx's own transport
    raises ``ConnectError``, ``RemoteProtocolError`` and ``ReadError``; so does this one.
    Which of them it is decides whether the request may have reached the UCD (see
    ``gateway.ucd.client``). Only a real connect timeout stays ``ConnectTimeout``.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ServerDisconnectedError):
                raise httpx.RemoteProtocolError(str(exc), request=request) from cause
            if isinstance(cause, aiohttp.ClientConnectorError):
                raise httpx.ConnectError(str(exc), request=request) from cause
            if isinstance(cause, aiohttp.ConnectionTimeoutError):
                raise
            if isinstance(cause, aiohttp.ServerTimeoutError):
                raise httpx.ReadTimeout(str(exc), request=request) from cause
            if isinstance(cause, aiohttp.ClientConnectionError):
                # Connected, then the socket failed (a reset): the request may be sent.
                raise httpx.ReadError(str(exc), request=request) from cause
            raise


def build_http_client(settings: Settings, *, base_url: str | None = None) -> httpx.AsyncClient:
    """A pooled client for the UCD at ``base_url`` (default: ``settings.ucd_base_url``).

    The caller owns the client and must ``aclose()`` it.
    """
    url = base_url if base_url is not None else settings.ucd_base_url
    if url is None:
        raise ValueError("no UCD base URL: pass base_url for the embedded local UCD")
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    timeout = httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout)
    transport: httpx.AsyncBaseTransport
    if settings.http_transport == "lean":
        transport = LeanTransport(url, limits=limits, timeout=timeout)
    elif settings.http_transport == "aiohttp":
        transport = UcdAiohttpTransport(limits=limits)
    else:
        transport = httpx.AsyncHTTPTransport(limits=limits)
    # Redirects are never followed: a UCD answer is final, and a redirect would carry
    # the partner token to wherever it points.
    return UcdHttpClient(base_url=url, transport=transport, timeout=timeout, follow_redirects=False)
