"""The real gateway process (``python -m gateway serve``) on free loopback ports.

For what needs a real server rather than an ASGI transport: a browser, and the Docker
image's HEALTHCHECK command. The gateway runs on its embedded local UCD in a temporary
data folder, with no ``UCD_GATEWAY_*`` variable of the caller's environment and no
``.env`` (its working directory is that folder). Its output goes to a file, so a full
pipe can never stall it; the banner line there gives the port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

#: The gateway's start (embedded local UCD, SQLite) on a loaded two-core machine.
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServedGateway:
    """A running gateway: its origin (``http://127.0.0.1:PORT``) and port."""

    origin: str
    port: int
    log: Path


def _banner_port(log: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in log.read_text("utf-8", errors="replace").splitlines():
            if line.startswith("ucd-gateway: GraphiQL on "):
                return int(line.rsplit(":", 1)[1].split("/", 1)[0])
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}: {log.read_text()}")
        time.sleep(0.05)
    raise RuntimeError(f"the gateway did not start in {START_TIMEOUT} s: {log.read_text()}")


@contextlib.contextmanager
def serving_gateway(folder: Path, env: Mapping[str, str] | None = None) -> Iterator[ServedGateway]:
    """Start the gateway in ``folder``, with ``env``'s variables over the defaults here;
    stop it (SIGTERM, then SIGKILL) on exit."""
    variables = {k: v for k, v in os.environ.items() if not k.upper().startswith("UCD_GATEWAY_")}
    variables.update(
        UCD_GATEWAY_PORT="0",
        UCD_GATEWAY_LOCAL_UCD_PORT="0",
        UCD_GATEWAY_LOCAL_UCD_DATA_DIR=str(folder / "ucd"),
        # The suite loads the machine; shedding on lag has tests of its own (test_loop_lag),
        # and so has the in-flight limit that follows the lag (test_in_flight_limit).
        UCD_GATEWAY_MAX_LOOP_LAG_MS="0",
        UCD_GATEWAY_TARGET_LOOP_LAG_MS="0",
    )
    variables.update(env or {})
    log = folder / "gateway.log"
    with (
        log.open("wb") as out,
        subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "gateway", "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=variables,
            cwd=folder,
        ) as process,
    ):
        try:
            port = _banner_port(log, process)
            origin = f"http://127.0.0.1:{port}"
            httpx.get(f"{origin}/healthz", timeout=10).raise_for_status()
            yield ServedGateway(origin, port, log)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
