"""``serve --workers N`` (gateway/workers.py): real processes, one port, one Redis.

Which worker answered a connection is read from the kernel (tests/gateway/served_workers.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.workers import RESTART_AFTER_S, Companion, WorkerFailed, supervise
from tests.gateway.processes import local_ucd, running
from tests.gateway.redis_server import RedisServer
from tests.gateway.served_workers import Served, children_of, graphql, one_per_worker

UPSERT = (
    'mutation { upsertUsers(input: {users: [{key: {uuid: "u-workers"}, '
    'attributes: {name: "Wanda"}}]}) { failureCount } }'
)
START_EXPORT = (
    'mutation { startExport(input: {segmentId: "1", attributes: ["name"]}) { id status } }'
)
EXPORT_JOB = "query($id: ID!) { exportJob(id: $id) { id status url } }"


# --- the served workers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ucd_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_ucd(tmp_path_factory.mktemp("workers-ucd")) as url:
        yield url


@pytest.fixture
def serve_workers(
    ucd_url: str, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[Served, Path]]:
    settings = {
        "UCD_GATEWAY_UCD_BASE_URL": ucd_url,
        "UCD_GATEWAY_REDIS_URL": redis_server.url,
        "UCD_GATEWAY_LOCAL_UCD_DATA_DIR": str(tmp_path / "data"),
    }
    log = tmp_path / "serve.log"
    with running(["serve", "--port", "0", "--workers", "2"], settings, log) as (url, process):
        host, port = url.removeprefix("http://").split(":")
        workers = children_of(process.pid)
        yield Served(host, int(port), process, workers), log


def test_two_workers_answer_on_one_port_and_share_export_jobs(
    serve_workers: tuple[Served, Path],
) -> None:
    served, _ = serve_workers
    assert len(served.workers) == 2
    owners = one_per_worker(served, served.workers)
    connections = list(owners.values())
    try:
        assert set(owners) == served.workers
        first, second = (owners[pid] for pid in sorted(owners))
        assert graphql(first, UPSERT) == {"upsertUsers": {"failureCount": 0}}
        job = graphql(first, START_EXPORT)["startExport"]
        assert job["status"] == "PENDING"
        # The UCD's webhook reaches whichever worker the kernel picks; the other sees READY.
        deadline = time.monotonic() + 30
        while (seen := graphql(second, EXPORT_JOB, id=job["id"])["exportJob"])[
            "status"
        ] == "PENDING":
            assert time.monotonic() < deadline, seen
            time.sleep(0.1)
        assert seen["status"] == "READY"
        assert graphql(first, EXPORT_JOB, id=job["id"])["exportJob"] == seen
    finally:
        for connection in connections:
            connection.close()


def test_sigterm_drains_every_worker_and_exits_within_15_s(
    serve_workers: tuple[Served, Path],
) -> None:
    served, log = serve_workers
    connection = served.connect()
    assert graphql(connection, "{ __typename }") == {"__typename": "Query"}
    signalled = time.monotonic()
    served.supervisor.send_signal(signal.SIGTERM)
    assert served.supervisor.wait(timeout=15) == 0
    assert time.monotonic() - signalled < 15
    assert not any(Path(f"/proc/{pid}").exists() for pid in served.workers)
    text = log.read_text()
    # Each worker drained (a line is "<time> INFO gateway.drain <request id>: <message>").
    assert len(re.findall(r" gateway\.drain .*: draining: ", text)) == 2
    assert len(re.findall(r" gateway\.drain .*: drained$", text, re.MULTILINE)) == 2
    connection.close()


def test_workers_end_when_the_supervisor_is_killed(serve_workers: tuple[Served, Path]) -> None:
    served, _ = serve_workers
    served.supervisor.kill()
    served.supervisor.wait(timeout=5)
    deadline = time.monotonic() + 15  # each drains (nothing in flight) and exits
    while any(Path(f"/proc/{pid}").exists() for pid in served.workers):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_worker_that_dies_is_started_again(serve_workers: tuple[Served, Path]) -> None:
    served, _ = serve_workers
    victim = min(served.workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        now = children_of(served.supervisor.pid)
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.1)
    # The new one serves: every connection is answered, by the survivor or by it.
    for _ in range(8):
        connection = served.connect()
        try:
            assert graphql(connection, "{ __typename }") == {"__typename": "Query"}
        finally:
            connection.close()


def test_without_a_ucd_url_the_embedded_local_ucd_runs_once_for_all_workers(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = {
        "UCD_GATEWAY_REDIS_URL": redis_server.url,
        "UCD_GATEWAY_LOCAL_UCD_DATA_DIR": str(tmp_path / "data"),
        "UCD_GATEWAY_LOCAL_UCD_PORT": "0",
    }
    log = tmp_path / "serve.log"
    with running(["serve", "--port", "0", "--workers", "2"], settings, log) as (url, process):
        children = children_of(process.pid)
        assert len(children) == 3  # two workers and one local UCD
        host, port = url.removeprefix("http://").split(":")
        served = Served(host, int(port), process, children)
        owners = one_per_worker(served, children)
        connections = list(owners.values())
        try:
            assert len(owners) == 2  # two of the three children accept on the gateway's port
            assert graphql(connections[0], UPSERT) == {"upsertUsers": {"failureCount": 0}}
            for connection in connections:  # every worker reads the one local UCD
                read = graphql(connection, '{ user(key: {uuid: "u-workers"}) { name } }')
                assert read == {"user": {"name": "Wanda"}}
        finally:
            for connection in connections:
                connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    assert log.read_text().count("embedded local UCD on http://127.0.0.1:") == 1


# --- refusals -------------------------------------------------------------------------------------


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("UCD_GATEWAY_")}
    return subprocess.run(  # noqa: S603  # our own interpreter and module
        [sys.executable, "-m", "gateway", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean | env,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "words"),
    [
        pytest.param(
            {"UCD_GATEWAY_UCD_BASE_URL": "http://127.0.0.1:9"},
            "--workers 2 needs UCD_GATEWAY_REDIS_URL: export jobs, APQ documents, "
            "circuit breakers, rate limits, the UCD quota and the profile cache would be per "
            "process",
            id="without-redis",
        ),
        pytest.param(
            {
                "UCD_GATEWAY_UCD_BASE_URL": "http://127.0.0.1:9",
                "UCD_GATEWAY_REDIS_URL": "redis://127.0.0.1:9/0",
                "UCD_GATEWAY_HOST": "0.0.0.0",  # noqa: S104  # the address refused
            },
            "refusing to serve without authentication on 0.0.0.0",
            id="public-without-credentials",
        ),
    ],
)
def test_more_than_one_worker_without_redis_is_refused_in_one_line(
    env: dict[str, str], words: str
) -> None:
    result = _serve(env, "--workers", "2")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"ucd-gateway serve: {words}")


def test_zero_workers_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    for name in list(os.environ):
        if name.upper().startswith("UCD_GATEWAY_"):
            monkeypatch.delenv(name)
    assert main(["serve", "--workers", "0"]) == 2
    assert capsys.readouterr().err == "ucd-gateway serve: --workers must be at least 1\n"


# --- the supervisor in this process, with trivial workers ------------------------------------


def _refuses(started: Callable[[], None]) -> int:
    return 2


def _serves_until_killed(started: Callable[[], None]) -> int:
    started()
    time.sleep(60)  # SIGTERM (the default action) ends it long before
    return 0


def test_a_worker_that_cannot_start_fails_the_start_with_its_exit_code() -> None:
    announced: list[bool] = []
    with pytest.raises(WorkerFailed) as failed:
        supervise(2, _refuses, exit_within=5, on_started=lambda: announced.append(True))
    assert failed.value.code == 2
    assert announced == []


def test_the_supervisor_announces_once_all_serve_and_stops_them_on_sigterm() -> None:
    seen: list[set[int]] = []

    def on_started() -> None:
        seen.append(children_of(os.getpid()))
        os.kill(os.getpid(), signal.SIGTERM)  # caught by the supervisor while it runs

    before = signal.getsignal(signal.SIGTERM)
    started_at = time.monotonic()
    supervise(2, _serves_until_killed, exit_within=5, on_started=on_started)
    assert time.monotonic() - started_at < 10
    (workers,) = seen
    assert len(workers) >= 2  # the two workers (and any other child of this test process)
    assert signal.getsignal(signal.SIGTERM) == before  # handlers given back


def test_the_supervisor_starts_a_dead_worker_again() -> None:
    events: list[str] = []
    later: list[set[int]] = []

    def on_started() -> None:
        victim = max(children_of(os.getpid()))
        os.kill(victim, signal.SIGKILL)
        events.append("killed")

        def stop_later(sig: int, frame: object) -> None:
            events.append("stopping")
            later.append(children_of(os.getpid()) - {victim})
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGALRM, stop_later)
        signal.setitimer(signal.ITIMER_REAL, RESTART_AFTER_S + 1.0)

    try:
        supervise(1, _serves_until_killed, exit_within=5, on_started=on_started)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert events == ["killed", "stopping"]
    (others,) = later
    assert others  # another worker took the dead one's place


def _companion_refuses(started: Callable[[str], None]) -> int:
    return 2


def _companion_serves(started: Callable[[str], None]) -> int:
    started("http://127.0.0.1:1")
    time.sleep(60)  # SIGTERM (the default action) ends it long before
    return 0


def test_a_companion_says_its_url_and_stops_when_told() -> None:
    companion = Companion(_companion_serves)
    assert companion.message == "http://127.0.0.1:1"
    assert companion.pid is not None
    pid = companion.pid
    companion.stop(within=5)
    assert not Path(f"/proc/{pid}").exists()


def test_a_companion_that_cannot_start_fails_with_its_exit_code() -> None:
    with pytest.raises(WorkerFailed) as failed:
        Companion(_companion_refuses)
    assert failed.value.code == 2
