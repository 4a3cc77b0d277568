"""The CLI's servers run on uvloop, with start-up objects frozen out of the collector
(gateway/tuning.py).

The commands run in this process with uvicorn's ``serve`` replaced by a probe that
records the running loop and the collector's state at the moment the server would start
taking requests, then returns: the command then closes its lifespan and exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import uvloop

from gateway.accepting import BatchAcceptingLoop
from gateway.cli import main
from gateway.drain import DrainingServer
from gateway.ucd.transport import KEEPALIVE_EXPIRY_S, SERVER_KEEP_ALIVE_S


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer .env or UCD_GATEWAY_* variable may reach the command."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("UCD_GATEWAY_"):
            monkeypatch.delenv(name)
    # The embedded local UCD on a free port: its default, 8765, is one for all test workers.
    monkeypatch.setenv("UCD_GATEWAY_LOCAL_UCD_PORT", "0")


@pytest.fixture
def probe(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """What the command's server saw when it started (``request.param``: its class; the
    embedded local UCD of ``serve`` serves for real); the collector is given back."""
    server_class: type[uvicorn.Server] = request.param
    seen: dict[str, Any] = {}
    thresholds = gc.get_threshold()

    async def serve(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        seen["loop"] = type(asyncio.get_running_loop())
        seen["frozen"] = gc.get_freeze_count()
        seen["sockets"] = sockets
        seen["keep_alive"] = self.config.timeout_keep_alive

    monkeypatch.setattr(server_class, "serve", serve)
    gc.unfreeze()
    try:
        yield seen
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.parametrize(
    ("command", "probe"),
    [
        pytest.param(["serve", "--port", "0"], DrainingServer, id="serve"),
        pytest.param(["local-ucd", "--port", "0", "--data", "ucd"], uvicorn.Server, id="local-ucd"),
    ],
    indirect=["probe"],
)
def test_the_cli_server_runs_on_uvloop_with_start_up_objects_frozen(
    probe: dict[str, Any], command: list[str]
) -> None:
    assert main(command) == 0
    assert probe["loop"] is BatchAcceptingLoop
    assert issubclass(BatchAcceptingLoop, uvloop.Loop)
    # The modules, the schema and the app: far more than a test's own few objects.
    assert probe["frozen"] > 50_000
    (sock,) = probe["sockets"]
    assert sock.proto == socket.IPPROTO_TCP


@pytest.mark.parametrize("probe", [pytest.param(DrainingServer, id="serve")], indirect=["probe"])
@pytest.mark.parametrize(("setting", "kept"), [(None, 75), ("120", 120)])
def test_the_gateway_keeps_idle_client_connections_longer_than_load_balancers_do(
    probe: dict[str, Any], monkeypatch: pytest.MonkeyPatch, setting: str | None, kept: int
) -> None:
    """Closing an idle connection first races the client's next request on it (a reset):
    75 s by default, longer than an AWS ALB's 60 s idle timeout."""
    if setting is not None:
        monkeypatch.setenv("UCD_GATEWAY_KEEP_ALIVE_TIMEOUT", setting)
    assert main(["serve", "--port", "0"]) == 0
    assert probe["keep_alive"] == kept


@pytest.mark.parametrize("probe", [pytest.param(DrainingServer, id="serve")], indirect=["probe"])
def test_local_ucd_servers_keep_idle_connections_longer_than_the_gateway_does(
    probe: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server closing an idle connection first races the next request written on it
    (a write then reads as maybe sent): the local UCD's servers wait longer."""
    from gateway import embedded

    started: list[float] = []
    start = embedded._start

    def recording(server: uvicorn.Server, sock: socket.socket) -> asyncio.Task[None]:
        started.append(server.config.timeout_keep_alive)
        return start(server, sock)

    monkeypatch.setattr(embedded, "_start", recording)
    assert main(["serve", "--port", "0"]) == 0  # with the embedded local UCD
    assert started == [SERVER_KEEP_ALIVE_S]
    assert SERVER_KEEP_ALIVE_S > KEEPALIVE_EXPIRY_S


@pytest.mark.parametrize("probe", [pytest.param(uvicorn.Server, id="local-ucd")], indirect=True)
def test_the_local_ucd_command_keeps_idle_connections_as_long(probe: dict[str, Any]) -> None:
    assert main(["local-ucd", "--port", "0", "--data", "ucd"]) == 0
    assert probe["keep_alive"] == SERVER_KEEP_ALIVE_S
