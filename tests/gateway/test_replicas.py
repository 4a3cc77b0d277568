"""Several gateway replicas, each its own ``ucd-gateway serve`` process, one shared
``ucd-gateway local-ucd`` process and one real Redis: export jobs are the replicas'
shared state. Also: the in-process backend keeps jobs across a restart of the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.persisted.manifest import sha256_hex
from tests.gateway.processes import local_ucd, started
from tests.gateway.redis_server import RedisServer

UPSERT = """
mutation($users: [UserUpsertInput!]!) { upsertUsers(input: {users: $users}) { failureCount } }
"""
START_EXPORT = (
    'mutation { startExport(input: {segmentId: "1", attributes: ["name"]}) { id status } }'
)
EXPORT_JOB = "query($id: ID!) { exportJob(id: $id) { id status url error } }"


async def graphql(base_url: str, query: str, **variables: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{base_url}/graphql", json={"query": query, "variables": variables}
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def ready_job(base_url: str, job_id: str) -> dict[str, Any]:
    """Poll ``exportJob`` on one replica until it is no longer PENDING (at most 30 s)."""
    async with asyncio.timeout(30):
        while True:
            job: dict[str, Any] = (await graphql(base_url, EXPORT_JOB, id=job_id))["exportJob"]
            if job["status"] != "PENDING":
                return job
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Replicas:
    a: str
    b: str
    c: str


@pytest.fixture(scope="module")
def replicas(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    """One local UCD, then B and C, then A, whose webhooks the UCD sends to B."""
    folder = tmp_path_factory.mktemp("replicas")
    with local_ucd(folder) as ucd:

        def replica(name: str, **extra: str) -> Any:
            settings = {
                "UCD_GATEWAY_UCD_BASE_URL": ucd,
                "UCD_GATEWAY_REDIS_URL": redis_server.url,
                # Its own folder, so nothing but Redis could carry a job between replicas.
                "UCD_GATEWAY_LOCAL_UCD_DATA_DIR": str(folder / name),
                **extra,
            }
            return started(["serve", "--port", "0"], settings, folder / f"{name}.log")

        # A tells the UCD to call B back: the webhook never reaches the replica that
        # started the job.
        with replica("b") as b, replica("c") as c, replica("a", UCD_GATEWAY_PUBLIC_URL=b) as a:
            yield Replicas(a, b, c)


async def test_an_export_started_on_a_is_completed_through_b_and_ready_on_every_replica(
    replicas: Replicas,
) -> None:
    written = await graphql(
        replicas.a, UPSERT, users=[{"key": {"uuid": "u-replicas"}, "attributes": {"name": "Ada"}}]
    )
    assert written["upsertUsers"]["failureCount"] == 0
    job = (await graphql(replicas.a, START_EXPORT))["startExport"]
    assert job["status"] == "PENDING"
    ready = await ready_job(replicas.a, job["id"])
    assert ready["status"] == "READY", ready
    assert ready["url"].startswith("http://127.0.0.1:")
    for other in (replicas.b, replicas.c):
        assert (await graphql(other, EXPORT_JOB, id=job["id"]))["exportJob"] == ready
    # The link works: the replicas agree on a file the UCD really wrote.
    async with httpx.AsyncClient(timeout=30) as client:
        download = await client.get(ready["url"])
    assert download.status_code == 200
    assert b"Ada" in download.content


async def test_a_webhook_for_a_job_of_another_replica_with_a_wrong_token_is_404(
    replicas: Replicas,
) -> None:
    job = (await graphql(replicas.a, START_EXPORT))["startExport"]
    async with httpx.AsyncClient(timeout=30) as client:
        wrong = await client.post(
            f"{replicas.c}/hooks/exports/{job['id']}/{'x' * 43}", json={"url": "http://x/y.csv"}
        )
    assert wrong.status_code == 404
    polled = (await graphql(replicas.c, EXPORT_JOB, id=job["id"]))["exportJob"]
    assert polled["url"] != "http://x/y.csv"


async def test_without_redis_a_restart_keeps_the_export_jobs(tmp_path: Path) -> None:
    settings = {
        # The embedded local UCD, on a free port, with the gateway's state in the same folder.
        "UCD_GATEWAY_LOCAL_UCD_DATA_DIR": str(tmp_path / "data"),
        "UCD_GATEWAY_LOCAL_UCD_PORT": "0",
    }
    with started(["serve", "--port", "0"], settings, tmp_path / "first.log") as first:
        await graphql(
            first, UPSERT, users=[{"key": {"uuid": "u-restart"}, "attributes": {"name": "Bo"}}]
        )
        job = (await graphql(first, START_EXPORT))["startExport"]
        ready = await ready_job(first, job["id"])
        assert ready["status"] == "READY"
    with started(["serve", "--port", "0"], settings, tmp_path / "second.log") as second:
        assert (await graphql(second, EXPORT_JOB, id=job["id"]))["exportJob"] == ready


async def test_a_document_registered_by_apq_on_a_runs_by_its_hash_on_b_and_c(
    replicas: Replicas,
) -> None:
    query = '{ user(key: {uuid: "u-apq-replicas"}) { name } }'
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(query)}}
    async with httpx.AsyncClient(timeout=30) as client:
        registered = await client.post(
            f"{replicas.a}/graphql", json={"query": query, "extensions": extensions}
        )
        assert registered.json()["data"] == {"user": None}
        for other in (replicas.b, replicas.c):
            by_hash = await client.post(f"{other}/graphql", json={"extensions": extensions})
            assert by_hash.json()["data"] == {"user": None}, by_hash.text
