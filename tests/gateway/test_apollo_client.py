"""Apollo Client's own persisted-queries link against the gateway, over real HTTP.

``apollo/apq.mjs`` runs in Node with pinned ``@apollo/client``, ``graphql`` and
``crypto-hash``, installed once into a folder under the system's temporary directory
named after the pins (so later runs reuse it). The gateway is a real uvicorn server on
a free loopback port in front of the in-process local UCD. Without ``node`` and ``npm``
the test is skipped, saying so; the same handshake in Python
(tests/gateway/test_persisted.py) always runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from gateway.app import create_app
from gateway.listening import listening_socket
from gateway.settings import Settings

SCRIPT = Path(__file__).parent / "apollo" / "apq.mjs"
#: Pinned: the link's behaviour is what the test checks.
PACKAGES = ("@apollo/client@3.13.9", "graphql@16.11.0", "crypto-hash@3.1.0")
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="node and npm are not installed: Apollo Client's own link cannot run "
    "(the Python APQ handshake in test_persisted.py still does)",
)


def _install_dir() -> Path:
    pins = hashlib.sha256(" ".join(PACKAGES).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"ucd-gateway-apollo-{pins}"


@pytest.fixture(scope="session")
def apollo_modules() -> Path:
    """The folder with the pinned packages installed (once; a lock keeps two xdist
    workers from installing at the same time)."""
    folder = _install_dir()
    folder.mkdir(exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / ".installed"
        if not done.exists():
            (folder / "package.json").write_text('{"private": true, "type": "module"}')
            assert NPM is not None
            subprocess.run(  # noqa: S603  (fixed arguments, npm from PATH)
                [NPM, "install", "--no-audit", "--no-fund", "--ignore-scripts", *PACKAGES],
                cwd=folder,
                check=True,
                capture_output=True,
                timeout=300,
            )
            done.touch()
    return folder


@contextlib.asynccontextmanager
async def served_gateway(settings: Settings, http: httpx.AsyncClient) -> AsyncIterator[str]:
    """The gateway app under uvicorn on a free loopback port; its /graphql URL."""
    app = create_app(settings, http_client=http)
    sock = listening_socket("127.0.0.1", 0, backlog=16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "the gateway did not start within 10 s"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()


async def _run_link(folder: Path, url: str, method: str) -> Any:
    script = folder / SCRIPT.name
    shutil.copyfile(SCRIPT, script)  # ESM resolves packages from the script's folder
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE, str(script), url, method, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return orjson.loads(stdout.splitlines()[-1])


UPSERT = "mutation($u: [UserUpsertInput!]!) { upsertUsers(input: {users: $u}) { failureCount } }"


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_apollo_clients_persisted_queries_link_completes_the_handshake(
    apollo_modules: Path, ucd_http: httpx.AsyncClient, settings: Settings, method: str
) -> None:
    async with served_gateway(settings, ucd_http) as url, httpx.AsyncClient() as client:
        written = await client.post(
            url,
            json={
                "query": UPSERT,
                "variables": {"u": [{"key": {"uuid": "u-ada"}, "attributes": {"name": "Ada"}}]},
            },
        )
        assert written.json()["data"]["upsertUsers"]["failureCount"] == 0
        report = await _run_link(apollo_modules, url, method)

    user = {"__typename": "User", "uuid": "u-ada", "name": "Ada"}
    assert report["results"] == [{"data": {"user": user}, "errors": None}] * 2
    requests = report["requests"]
    (sha256,) = {r["sha256Hash"] for r in requests}  # the link hashed the document once
    assert isinstance(sha256, str)
    # Hash alone (refused: PersistedQueryNotFound), hash and query by POST (registered),
    # then the second client's hash alone, answered.
    assert [(r["method"], r["hasQuery"], r["status"]) for r in requests] == [
        (method, False, 200),
        ("POST", True, 200),
        (method, False, 200),
    ]
    cached = "private, max-age=60" if method == "GET" else None
    assert [r["cacheControl"] for r in requests] == [None, None, cached]
