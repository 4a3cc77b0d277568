"""Graceful drain of ``ucd-gateway serve`` (gateway/drain.py), on the real server in a
child process: SIGTERM makes /readyz answer 503 at once and refuses new GraphQL requests,
while the one in flight (a coalesced write to the embedded local UCD) still finishes; then
the process exits 0 within 15 s, also when the UCD never answers and operations may take
a minute."""

from __future__ import annotations

import asyncio
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

from gateway.ucd.paths import UPSERT_PATH
from tests.gateway.loopback_ucd import loopback_ucd

UPSERT = (
    'mutation { upsertUsers(input: {users: [{key: {email: "ada@example.com"}, '
    'attributes: {name: "Ada"}}]}) { successCount failureCount } }'
)
#: The write waits this long in the upsert coalescer: the operation in flight.
WINDOW_MS = 4000
#: Two users: not coalesced, the mutation's own E1 call.
UPSERT_TWO = (
    'mutation { upsertUsers(input: {users: [{key: {email: "ada@example.com"}, '
    'attributes: {name: "Ada"}}, {key: {email: "bob@example.com"}, '
    'attributes: {name: "Bob"}}]}) { successCount failureCount } }'
)


def _gateway_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("UCD_GATEWAY_")}
    env.update({f"UCD_GATEWAY_{name.upper()}": value for name, value in settings.items()})
    return env


def _base_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    banner = process.stdout.readline()
    return banner.split(" on ", 1)[1].strip().removesuffix("/graphql")


def test_sigterm_drains_the_gateway_and_exits_0(tmp_path: Path) -> None:
    env = _gateway_env(
        port="0",
        local_ucd_port="0",
        local_ucd_data_dir=str(tmp_path / "ucd"),
        upsert_window_ms=str(WINDOW_MS),
    )
    command = [sys.executable, "-m", "gateway", "serve"]
    with subprocess.Popen(  # noqa: S603  # our own interpreter and module
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    ) as process:
        try:
            base = _base_url(process)
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


async def test_sigterm_exits_within_15_s_when_the_ucd_hangs_and_operations_may_take_a_minute(
    tmp_path: Path,
) -> None:
    async with loopback_ucd(upsert="hang") as ucd:
        env = _gateway_env(
            port="0",
            ucd_base_url=ucd.url,
            operation_timeout="60",
            request_timeout="60",
            drain_timeout="10",
            # Longer than the drain: the single-user write is still waiting to be sent
            # when the lifespan closes, so the final flush sends it to the silent UCD.
            upsert_window_ms="60000",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "serve",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        try:
            assert process.stdout is not None
            banner = (await process.stdout.readline()).decode()
            base = banner.split(" on ", 1)[1].strip().removesuffix("/graphql")
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                writes = [
                    asyncio.create_task(client.post("/graphql", json={"query": query}))
                    for query in (UPSERT, UPSERT_TWO)
                ]
                # The two-user write is on the wire (never answered) before the signal.
                async with asyncio.timeout(10):
                    while ucd.seen[UPSERT_PATH] < 1:  # noqa: ASYNC110  # only a count
                        await asyncio.sleep(0.05)
                signalled = time.monotonic()
                process.send_signal(signal.SIGTERM)
                ready = await client.get("/readyz", timeout=5)
                assert (ready.status_code, ready.json()) == (503, {"status": "draining"})

                assert await asyncio.wait_for(process.wait(), 20) == 0
                assert time.monotonic() - signalled < 15
                coalesced, direct = await asyncio.wait_for(asyncio.gather(*writes), 5)
        finally:
            if process.returncode is None:
                process.kill()
            _, stderr = await asyncio.wait_for(process.communicate(), 10)
            errors = stderr.decode()
        # The pending write was sent by the final flush: two E1 calls, neither repeated
        # (besides them, serve's start-up check of the UCD, one E10 call, at most).
        seen = dict(ucd.seen)
        assert seen.pop("/api/user/v3/metadata/columns", 1) == 1
        assert seen == {UPSERT_PATH: 2}
    # Neither caller heard of success nor got a bare 500: both writes may have been
    # applied, and each caller is told so.
    for answer in (coalesced, direct):
        assert answer.status_code == 503, answer.text
        (error,) = answer.json()["errors"]
        assert error["extensions"]["code"] == "UPSTREAM_OUTCOME_UNKNOWN"
        assert "may or may not have been applied" in error["message"]
    assert "Traceback" not in errors
    assert "stopped by the shutdown" in errors
