"""Graceful drain of ``ucd-gateway serve`` (gateway/drain.py), on the real server in a
child process: SIGTERM makes /readyz answer 503 at once and refuses new GraphQL requests,
while the one in flight (a coalesced write to the embedded local UCD) still finishes; then
the process exits 0 within 15 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

UPSERT = (
    'mutation { upsertUsers(input: {users: [{key: {email: "ada@example.com"}, '
    'attributes: {name: "Ada"}}]}) { successCount failureCount } }'
)
#: The write waits this long in the upsert coalescer: the operation in flight.
WINDOW_MS = 4000


def test_sigterm_drains_the_gateway_and_exits_0(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("UCD_GATEWAY_")}
    env.update(
        UCD_GATEWAY_PORT="0",
        UCD_GATEWAY_LOCAL_UCD_PORT="0",
        UCD_GATEWAY_LOCAL_UCD_DATA_DIR=str(tmp_path / "ucd"),
        UCD_GATEWAY_UPSERT_WINDOW_MS=str(WINDOW_MS),
    )
    command = [sys.executable, "-m", "gateway", "serve"]
    with subprocess.Popen(  # noqa: S603  # our own interpreter and module
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    ) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            base = banner.split(" on ", 1)[1].strip().removesuffix("/graphql")
            assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200

            slow: dict[str, Any] = {}

            def write() -> None:
                slow["answer"] = httpx.post(f"{base}/graphql", json={"query": UPSERT}, timeout=30)

            writer = threading.Thread(target=write)
            writer.start()
            # Well inside the write's 4 s window, so it is in flight when the signal comes.
            time.sleep(1.5)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)

            ready = httpx.get(f"{base}/readyz", timeout=5)
            assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
            assert time.monotonic() - signalled < 3
            refused = httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}, timeout=5)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            (error,) = refused.json()["errors"]
            assert error["extensions"]["code"] == "OVERLOADED"
            assert "shutting down" in error["message"]

            writer.join(timeout=30)
            answer = slow["answer"]
            assert answer.status_code == 200
            assert orjson.loads(answer.content)["data"] == {
                "upsertUsers": {"successCount": 1, "failureCount": 0}
            }
            assert process.wait(timeout=15) == 0
            assert time.monotonic() - signalled < 15
        finally:
            if process.poll() is None:
                process.kill()
            _, errors = process.communicate(timeout=10)
    assert "Traceback" not in errors
    assert "drained" in errors
