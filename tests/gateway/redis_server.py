"""A real Redis-protocol server for the tests, on a free loopback port.

The system's ``redis-server`` or ``valkey-server`` (``make test`` and ``.ci/run`` install
redis-server with apt when missing, through .ci/install-redis), started with no
persistence (``--save '' --appendonly no``) in a temporary folder. Never an in-process
imitation: the shared-state tests are about what a real server does when it is gone.

Without a server the tests that need one fail with one line saying so; they are never
skipped.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Final

import pytest

#: The servers we can run, in order of preference.
BINARIES: Final = ("redis-server", "valkey-server")
NO_SERVER: Final = (
    "no redis-server or valkey-server on PATH: run `make test` as root (it installs "
    "redis-server with apt-get) or install one"
)


def server_binary() -> str:
    """The path of a server binary, or the test fails with ``NO_SERVER``."""
    for name in BINARIES:
        found = shutil.which(name)
        if found is not None:
            return found
    pytest.fail(NO_SERVER, pytrace=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One server process; ``stop`` and ``start`` again keep its port (a restart)."""

    def __init__(self, folder: Path) -> None:
        self.binary = server_binary()
        self.folder = folder
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not running"
        return self._process.pid

    def start(self) -> None:
        """Start on a free port (three tries: another process may take it first), or on
        the port of the last run."""
        for _ in range(3):
            port = self.port or _free_port()
            self._process = subprocess.Popen(  # noqa: S603  # a server binary found on PATH
                [
                    self.binary,
                    *("--port", str(port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no"),
                    *("--dir", str(self.folder), "--daemonize", "no"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._process.poll() is None:
                if _answers_ping(port):
                    self.port = port
                    return
                time.sleep(0.02)
            self.stop()
        pytest.fail(f"{self.binary} did not start on 127.0.0.1", pytrace=False)

    def stop(self) -> None:
        """Kill the process (no shutdown, as in a crash) and wait for it."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
