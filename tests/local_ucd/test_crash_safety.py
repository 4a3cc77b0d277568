"""Durability (§4.10): SIGKILL under load loses no acknowledged write and half-applies nothing.

The local UCD runs under real uvicorn in a subprocess. Several clients send upserts of
small batches (every user and event unique and tagged with its batch); the process is
killed at a random moment, restarted on the same data directory, and killed again, for
several rounds. After each kill the database (read directly, the process being dead) must
pass ``integrity_check``, hold every user and event of every acknowledged (200) batch, and
hold each unacknowledged batch entirely or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.local_ucd.conftest import AUTH

pytestmark = pytest.mark.slow

ROUNDS = 5
CLIENTS = 6
USERS_PER_BATCH = 5

SERVER = """
import sys
from pathlib import Path

import uvicorn

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig

port = int(sys.argv[2])
config = LocalUcdConfig(data_dir=Path(sys.argv[1]), host="127.0.0.1", port=port)
uvicorn.run(create_local_ucd_app(config), host="127.0.0.1", port=port, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    base_url: str = ""

    def start(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
            [sys.executable, "-c", SERVER, str(self.data_dir), str(port)],
            cwd=Path(__file__).resolve().parents[2],
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the local UCD exited at start-up"
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("the local UCD did not become healthy")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "ucd")
    try:
        yield srv
    finally:
        srv.kill()


@dataclass
class Ledger:
    """Every batch sent: acknowledged with a 200, or in doubt (no answer)."""

    acked: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)
    acknowledged: asyncio.Event = field(default_factory=asyncio.Event)


def email(batch: str, j: int) -> str:
    return f"{batch}-u{j}@crash.example.com"


def batch_body(batch: str, timestamp: str) -> dict[str, Any]:
    return {
        "users": [
            {
                "identifiers": {"email": email(batch, j)},
                "attributes": {"custom": {"batch": batch}},
                "events": [
                    {
                        "event_name": "tick",
                        "timestamp": timestamp,
                        "event_params": {"custom": {"batch": batch, "j": j}},
                    }
                ],
            }
            for j in range(USERS_PER_BATCH)
        ]
    }


async def load(base_url: str, round_no: int, ledger: Ledger) -> None:
    """Send batches from several clients until the server dies under them."""
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def client(c: int) -> None:
        async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=10) as http:
            for seq in range(100_000):
                batch = f"r{round_no}-c{c}-s{seq}"
                try:
                    response = await http.post(
                        "/api/user/v1/upsert", json=batch_body(batch, timestamp)
                    )
                except httpx.TransportError:
                    ledger.in_doubt.append(batch)
                    return
                assert response.status_code == 200, response.text
                assert response.json() == {
                    "data": {"successful": {"count": USERS_PER_BATCH}, "fail": {}}
                }
                ledger.acked.append(batch)
                ledger.acknowledged.set()

    tasks = [asyncio.create_task(client(c)) for c in range(CLIENTS)]
    await asyncio.gather(*tasks)  # a client's failed assertion fails the test


def users_of_batch(conn: sqlite3.Connection, batch: str) -> int:
    """How many users of the batch are fully present: identifier, attribute and event."""
    present = 0
    for j in range(USERS_PER_BATCH):
        row = conn.execute(
            "SELECT profile_pk FROM identifiers"
            " WHERE partner = 'local' AND kind = 'email' AND value = ?",
            (email(batch, j),),
        ).fetchone()
        if row is None:
            continue
        (pk,) = row
        attribute = conn.execute(
            "SELECT value FROM attributes WHERE profile_pk = ? AND custom = 1 AND name = 'batch'",
            (pk,),
        ).fetchone()
        events = conn.execute(
            "SELECT count(*) FROM events WHERE profile_pk = ? AND name = 'tick'", (pk,)
        ).fetchone()[0]
        assert attribute == (f'"{batch}"',), f"user {j} of {batch} without its attribute"
        assert events == 1, f"user {j} of {batch} has {events} events"
        present += 1
    return present


def check_database(path: Path, ledger: Ledger) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        for batch in ledger.acked:
            assert users_of_batch(conn, batch) == USERS_PER_BATCH, f"acknowledged {batch} lost"
        for batch in ledger.in_doubt:
            assert users_of_batch(conn, batch) in (0, USERS_PER_BATCH), f"{batch} half-applied"
    finally:
        conn.close()


async def kill_at_random(server: Server, ledger: Ledger, rng: random.Random) -> None:
    """SIGKILL at a random moment once the round has had its first acknowledgement."""
    ledger.acknowledged.clear()
    with contextlib.suppress(TimeoutError):  # the round's assertion reports a silent round
        await asyncio.wait_for(ledger.acknowledged.wait(), 15)
    await asyncio.sleep(rng.uniform(0.0, 0.8))
    server.kill()


async def test_sigkill_under_load_loses_no_acknowledged_write(server: Server) -> None:
    rng = random.Random()
    ledger = Ledger()
    for round_no in range(ROUNDS):
        await asyncio.to_thread(server.start)
        if round_no > 0:
            # Acknowledged data of earlier rounds is served again after the restart.
            async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH) as http:
                batch = rng.choice(ledger.acked)
                response = await http.post(
                    "/api/user/v1/profile",
                    json={"identifiers": {"email": email(batch, 0)}, "attributes": ["c_batch"]},
                )
                assert response.status_code == 200, response.text
                assert response.json()["attributes"]["c_batch"] == batch
        acked_before = len(ledger.acked)
        killer = asyncio.create_task(kill_at_random(server, ledger, rng))
        await load(server.base_url, round_no, ledger)
        await killer
        assert len(ledger.acked) > acked_before, "no batch was acknowledged before the kill"
        check_database(server.data_dir / "ucd.sqlite3", ledger)
    assert len(ledger.in_doubt) >= ROUNDS  # every round killed clients mid-request
