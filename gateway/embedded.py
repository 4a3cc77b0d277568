"""The embedded local UCD: served next to the gateway when no UCD URL is configured.

``run_local_ucd(settings)`` runs it as a sibling uvicorn server on 127.0.0.1, in the
gateway's process and event loop, so the gateway reaches it over real HTTP exactly as
it reaches Insider's host. This module is one of the few places that wire the local
UCD into the gateway (with the app's lifespan and the command line).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from gateway.listening import listening_socket
from gateway.logs import embedded_server_context, install_local_ucd_lines
from gateway.settings import Settings
from gateway.ucd.transport import SERVER_KEEP_ALIVE_S

# The gateway's start-up messages have always been logged under the app's name.
logger = logging.getLogger("gateway.app")


class EmbeddedUcdError(RuntimeError):
    """The embedded local UCD could not start (port taken, bad partner name ...)."""


class _SiblingServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the main server: it stops with the lifespan."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def run_local_ucd(settings: Settings) -> AsyncIterator[str]:
    """Serve the embedded local UCD on 127.0.0.1 in this event loop; yields its base URL.

    The socket is bound here (not by uvicorn) so a taken port is an ``OSError`` for the
    caller instead of uvicorn's ``sys.exit``, and port 0 is known before the local UCD's
    config (whose export links need the real port) is built. Its lifespan runs here
    too, so a bad configuration raises normally.
    """
    # Imported here: importing the gateway app must not load the whole local UCD
    # (dozens of modules) when a real UCD URL is configured.
    from gateway.local_ucd.app import create_local_ucd_app
    from gateway.local_ucd.config import ConfigError, LocalUcdConfig

    try:
        sock = listening_socket("127.0.0.1", settings.local_ucd_port, backlog=128)
    except OSError as exc:
        raise EmbeddedUcdError(
            f"the embedded local UCD cannot listen on 127.0.0.1:{settings.local_ucd_port} "
            f"({exc.strerror}); set UCD_GATEWAY_LOCAL_UCD_PORT (0 picks a free port)"
        ) from None
    try:
        port = sock.getsockname()[1]
        config = LocalUcdConfig(
            host="127.0.0.1",
            port=port,
            data_dir=settings.local_ucd_data_dir,
            partners={settings.partner: (settings.token.get_secret_value(),)},
        )
        try:
            local_app = create_local_ucd_app(config)
        except ConfigError as exc:
            raise EmbeddedUcdError(f"the embedded local UCD: {exc}") from None
        server = _SiblingServer(
            # Leave logging alone: uvicorn's set-up is process-wide (even access_log=False
            # clears the shared access logger), so the main server's settings apply.
            uvicorn.Config(
                local_app,
                lifespan="off",
                log_config=None,
                log_level=None,
                timeout_keep_alive=SERVER_KEEP_ALIVE_S,
            )
        )
        async with local_app.router.lifespan_context(local_app):
            serving = _start(server, sock)
            try:
                await _wait_started(server, serving)
                logger.info("embedded local UCD on http://127.0.0.1:%d", port)
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
                await serving
    finally:
        sock.close()


def _start(server: uvicorn.Server, sock: socket.socket) -> asyncio.Task[None]:
    # Its lines under the local UCD's names, not as repeats of the gateway server's
    # (gateway/logs.py): the server's task, and every connection task it starts, runs
    # in a context that says so.
    install_local_ucd_lines()
    loop = asyncio.get_running_loop()
    return loop.create_task(server.serve(sockets=[sock]), context=embedded_server_context())


async def _wait_started(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    while not server.started:
        if serving.done():
            serving.result()  # raises the startup error, if any
            raise RuntimeError("the embedded local UCD stopped during start-up")
        await asyncio.sleep(0.005)
