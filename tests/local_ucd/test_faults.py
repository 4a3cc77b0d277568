"""Fault injection (§5.7): seeded draws, bands, injected answers and dropped connections."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import FaultConfig, LocalUcdConfig
from gateway.local_ucd.faults import FaultAction, FaultInjector
from gateway.local_ucd.http import TOO_MANY_REQUESTS, UNKNOWN_ERROR
from tests.local_ucd.conftest import AUTH, serve

NO_AUTH: dict[str, str] = {}


def faults(endpoints: dict[str, Any], seed: int | str | None = 42) -> FaultConfig:
    return FaultConfig.from_json({"seed": seed, "endpoints": endpoints})


async def kinds(injector: FaultInjector, key: str, n: int) -> list[str]:
    return [(await injector.draw(key)).kind for _ in range(n)]


async def test_same_seed_gives_the_same_sequence_twice() -> None:
    config = faults({"*": {"error_500_rate": 0.2, "error_429_rate": 0.2, "drop_rate": 0.2}})
    first = await kinds(FaultInjector(config), "upsert", 200)
    second = await kinds(FaultInjector(config), "upsert", 200)
    assert first == second
    assert {"none", "error_500", "error_429", "drop"} == set(first)


async def test_each_key_has_its_own_generator() -> None:
    """Traffic on one endpoint does not shift the faults another endpoint meets."""
    config = faults({"*": {"error_500_rate": 0.5}})
    alone = await kinds(FaultInjector(config), "profile", 50)
    interleaved = FaultInjector(config)
    mixed = []
    for _ in range(50):
        await interleaved.draw("upsert")
        mixed.append((await interleaved.draw("profile")).kind)
    assert mixed == alone
    assert alone != await kinds(FaultInjector(config), "upsert", 50)


async def test_generator_is_seeded_with_seed_colon_key() -> None:
    config = faults({"upsert": {"error_500_rate": 0.5}}, seed="s1")
    reference = random.Random("s1:upsert")
    expected = ["error_500" if reference.random() < 0.5 else "none" for _ in range(100)]
    assert await kinds(FaultInjector(config), "upsert", 100) == expected


async def test_bands_are_500_then_429_then_drop_then_drop_after_commit() -> None:
    rates = {
        "error_500_rate": 0.1,
        "error_429_rate": 0.2,
        "drop_rate": 0.3,
        "drop_after_commit_rate": 0.15,
        "retry_after_s": 3,
    }
    reference = random.Random("7:delete_user")

    def band(r: float) -> str:
        for kind, upper in (
            ("error_500", 0.1),
            ("error_429", 0.3),
            ("drop", 0.6),
            ("drop_after_commit", 0.75),
        ):
            if r < upper:
                return kind
        return "none"

    expected = [band(reference.random()) for _ in range(400)]
    injector = FaultInjector(faults({"delete_user": rates}, seed=7))
    actions = [await injector.draw("delete_user") for _ in range(400)]
    assert [a.kind for a in actions] == expected
    assert {a.retry_after_s for a in actions if a.kind == "error_429"} == {3}
    assert set(expected) == {"none", "error_500", "error_429", "drop", "drop_after_commit"}


async def test_unseeded_generators_still_respect_the_bands() -> None:
    injector = FaultInjector(faults({"*": {"drop_rate": 1.0}}, seed=None))
    assert set(await kinds(injector, "export", 20)) == {"drop"}
    injector = FaultInjector(faults({"*": {"error_429_rate": 0.5}}, seed=None))
    assert set(await kinds(injector, "export", 200)) == {"none", "error_429"}


async def test_latency_is_slept_before_the_draw_and_star_is_the_fallback() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    config = faults({"upsert": {"latency_ms": 150}, "*": {"latency_ms": 20}})
    injector = FaultInjector(config, sleep=sleep)
    assert await injector.draw("upsert") == FaultAction("none")
    assert await injector.draw("profile") == FaultAction("none")
    assert slept == [0.15, 0.02]


async def test_a_key_without_faults_does_nothing() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    injector = FaultInjector(faults({"upsert": {"drop_rate": 1.0}}), sleep=sleep)
    assert await kinds(injector, "profile", 10) == ["none"] * 10
    assert slept == []


async def test_real_latency_delays_the_answer() -> None:
    injector = FaultInjector(faults({"*": {"latency_ms": 50}}))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await injector.draw("profile")
    assert loop.time() - started >= 0.045


# --- through the pipeline ----------------------------------------------------------


def with_faults(
    config: LocalUcdConfig, endpoints: dict[str, Any], seed: int = 42
) -> LocalUcdConfig:
    return replace(config, faults=faults(endpoints, seed))


async def test_injected_500_comes_before_authentication(ucd_config: LocalUcdConfig) -> None:
    config = with_faults(ucd_config, {"metadata_columns": {"error_500_rate": 1.0}})
    async with serve(config, NO_AUTH) as (_, client):
        response = await client.post("/api/user/v3/metadata/columns", json={"table": "events"})
    assert response.status_code == 500
    assert response.json() == UNKNOWN_ERROR
    assert response.headers["content-type"] == "application/json"


async def test_injected_429_carries_retry_after(ucd_config: LocalUcdConfig) -> None:
    config = with_faults(ucd_config, {"profile": {"error_429_rate": 1.0, "retry_after_s": 7}})
    async with serve(config, NO_AUTH) as (_, client):
        response = await client.post("/api/user/v1/profile", content=b"not even json")
    assert response.status_code == 429
    assert response.json() == TOO_MANY_REQUESTS
    assert response.headers["Retry-After"] == "7"


async def test_seeded_faults_repeat_over_http(ucd_config: LocalUcdConfig) -> None:
    """Without headers a request answers 400 Empty Partner unless a 500 was injected first."""
    config = with_faults(ucd_config, {"anonymize_user": {"error_500_rate": 0.5}}, seed=99)
    reference = random.Random("99:anonymize_user")
    expected = [500 if reference.random() < 0.5 else 400 for _ in range(40)]
    for _ in range(2):
        async with serve(config, NO_AUTH) as (_, client):
            statuses = [
                (await client.post("/api/user/v1/anonymize", json={})).status_code
                for _ in range(40)
            ]
        assert statuses == expected


async def test_local_endpoints_and_healthz_are_never_faulted(ucd_config: LocalUcdConfig) -> None:
    config = with_faults(ucd_config, {"*": {"error_500_rate": 1.0}})
    async with serve(config, NO_AUTH) as (_, client):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
        segments = await client.get("/api/local/v1/segments")
        attributes = await client.post("/api/local/v1/attributes", json={})
        # Every §3 endpoint, by contrast, is hit.
        anonymize = await client.post("/api/contact/v1/anonymize", json={})
    assert segments.status_code == attributes.status_code == 400
    assert segments.json() == {"success": False, "message": "Empty Partner"}
    assert anonymize.status_code == 500


async def test_injected_faults_are_not_counted_by_rate_limits(ucd_config: LocalUcdConfig) -> None:
    config = with_faults(
        replace(ucd_config, strict_rate_limits=True),
        {"profile": {"error_500_rate": 0.3, "error_429_rate": 0.3, "drop_rate": 0.4}},
    )
    body = {"identifiers": {"email": "ada@example.com"}, "attributes": ["name"]}
    async with serve(config) as (app, client):
        for _ in range(30):
            with contextlib.suppress(httpx.RemoteProtocolError):
                response = await client.post("/api/user/v1/profile", json=body)
                assert response.status_code in (429, 500)
        assert app.state.services.limiter.profile_used("local") == 0


async def test_drop_is_a_remote_protocol_error_in_process(ucd_config: LocalUcdConfig) -> None:
    config = with_faults(ucd_config, {"upsert": {"drop_rate": 1.0}})
    async with serve(config) as (_, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/api/user/v1/upsert", json={"users": []})
        # The app is still healthy after a drop.
        assert (await client.get("/healthz")).status_code == 200


async def test_drop_after_commit_commits_the_write(ucd_config: LocalUcdConfig) -> None:
    user = {"identifiers": {"email": "grace@example.com"}, "attributes": {"name": "Grace"}}
    config = with_faults(ucd_config, {"upsert": {"drop_after_commit_rate": 1.0}})
    async with serve(config) as (app, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/api/user/v1/upsert", json={"users": [user]})
        # Read the store directly: E2 may be faulted or unimplemented; the row is the proof.
        store = app.state.services.store
        count = await store.read(
            lambda conn: conn.execute(
                "SELECT count(*) FROM identifiers WHERE value = ?", ("grace@example.com",)
            ).fetchone()[0]
        )
    assert count == 1


async def test_drop_after_commit_also_drops_a_refusal(ucd_config: LocalUcdConfig) -> None:
    """The request is processed as usual; no answer reaches the client, a 400 included."""
    config = with_faults(ucd_config, {"upsert": {"drop_after_commit_rate": 1.0}})
    async with serve(config) as (_, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/api/user/v1/upsert", json={"users": "nope"})


async def test_injected_drop_before_commit_writes_nothing(ucd_config: LocalUcdConfig) -> None:
    config = with_faults(ucd_config, {"upsert": {"drop_rate": 1.0}})
    user = {"identifiers": {"email": "alan@example.com"}, "attributes": {"name": "Alan"}}
    async with serve(config) as (app, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/api/user/v1/upsert", json={"users": [user]})
        count = await app.state.services.store.read(
            lambda conn: conn.execute("SELECT count(*) FROM profiles").fetchone()[0]
        )
    assert count == 0


# --- under a real server -------------------------------------------------------------


@contextlib.asynccontextmanager
async def uvicorn_server(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="critical")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()  # surface a start-up failure
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def test_drop_reaches_a_real_client_as_a_broken_connection(
    ucd_config: LocalUcdConfig,
) -> None:
    config = with_faults(ucd_config, {"metadata_columns": {"drop_rate": 1.0}})
    app = create_local_ucd_app(replace(config, port=0))
    async with (
        uvicorn_server(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=AUTH) as client,
    ):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.post("/api/user/v3/metadata/columns", json={"table": "events"})
