"""Reach the local UCD in-process: an httpx transport over its ASGI app (seeding, tests, bench)."""

from __future__ import annotations

import httpx

from gateway.local_ucd.http import ConnectionDropped

__all__ = ["LocalUcdTransport"]


class LocalUcdTransport(httpx.ASGITransport):
    """``httpx.ASGITransport`` that reports an injected drop the way the wire does.

    Under uvicorn a dropped connection reaches the client as ``httpx.RemoteProtocolError``;
    in-process the app's :class:`ConnectionDropped` would surface as itself. Translating it
    keeps one code path in the gateway for both.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a complete response.", request=request
            ) from exc
