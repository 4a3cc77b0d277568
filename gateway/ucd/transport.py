"""The one place that builds the pooled ``httpx.AsyncClient`` the gateway talks to the UCD with.

The code speaks httpx everywhere (``AsyncClient``, ``MockTransport`` and ``ASGITransport``
in tests); only the production transport underneath is chosen here. httpx-aiohttp's
transport keeps httpx's API and runs requests on aiohttp's connection pool, which
measured ~2.4x the requests/s of httpx's default transport on these machines
(docs/perf-notes.md); ``UCD_GATEWAY_HTTP_TRANSPORT=httpx`` switches back.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.settings import Settings


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


class UcdHttpClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` with ``_SetCookieOnlyCookies`` as its cookie store.

    httpx reads and replaces the store only through the public ``cookies`` property,
    so overriding it is enough; everything else is httpx's own client.
    """

    def __init__(self, *, cookies: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cookies = cookies

    @property
    def cookies(self) -> httpx.Cookies:
        return self._set_cookie_only

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._set_cookie_only = _SetCookieOnlyCookies(cookies)


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
        keepalive_expiry=30.0,
    )
    timeout = httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout)
    transport: httpx.AsyncBaseTransport
    if settings.http_transport == "aiohttp":
        transport = UcdAiohttpTransport(limits=limits)
    else:
        transport = httpx.AsyncHTTPTransport(limits=limits)
    # Redirects are never followed: a UCD answer is final, and a redirect would carry
    # the partner token to wherever it points.
    return UcdHttpClient(base_url=url, transport=transport, timeout=timeout, follow_redirects=False)
