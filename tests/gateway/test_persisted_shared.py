"""APQ documents in Redis (gateway/persisted/shared.py): two apps on one real Redis find
each other's documents; with Redis killed, a hash-only request is
PERSISTED_QUERY_NOT_FOUND, the full query that an APQ client then sends runs, and its
hash works again from this process's memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import httpx
import pytest
import redis.asyncio
from pydantic import SecretStr

from gateway.persisted.manifest import sha256_hex
from gateway.persisted.shared import SharedDocumentStore
from gateway.persisted.store import MemoryDocumentStore
from gateway.settings import Settings
from gateway.state.redis import KEY_PREFIX
from tests.gateway.conftest import CallLog, GatewayHttp, HookRelay, serve_gateway
from tests.gateway.redis_server import RedisServer

PROFILE_PATH_CALLS = "/api/user/v1/profile"
#: The answer for a user the UCD does not know: the document ran.
NOBODY: Final = {"data": {"user": None}}


def apq(query: str | None, sha256: str) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256}}}
    if query is not None:
        body["query"] = query
    return body


async def post(gateway: GatewayHttp, body: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.client.post("/graphql", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    answer.pop("extensions", None)  # the cost: not what these tests are about
    return answer


@pytest.fixture
def shared_settings(private_redis: RedisServer, settings: Settings) -> Settings:
    return settings.model_copy(
        update={"redis_url": SecretStr(private_redis.url), "redis_timeout": 0.5}
    )


@pytest.fixture
async def two_replicas(
    shared_settings: Settings, ucd_http: httpx.AsyncClient, hooks: HookRelay
) -> AsyncIterator[tuple[GatewayHttp, GatewayHttp]]:
    async with (
        serve_gateway(shared_settings, ucd_http, hooks) as a,
        serve_gateway(shared_settings, ucd_http) as b,
    ):
        yield a, b


async def test_a_document_registered_on_one_replica_runs_by_hash_on_the_other(
    two_replicas: tuple[GatewayHttp, GatewayHttp], private_redis: RedisServer
) -> None:
    a, b = two_replicas
    query = '{ user(key: {uuid: "nobody-apq"}) { name } }'
    sha256 = sha256_hex(query)
    assert await post(a, apq(query, sha256)) == NOBODY
    assert await post(b, apq(None, sha256)) == NOBODY
    client = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        key = f"{KEY_PREFIX}:persisted-documents:{sha256}"
        assert await client.get(key) == query.encode()
        assert 86_300_000 < await client.pttl(key) <= 86_400_000  # UCD_GATEWAY_PERSISTED_TTL
    finally:
        await client.aclose()


async def test_a_document_over_the_limits_is_not_stored_in_redis(
    two_replicas: tuple[GatewayHttp, GatewayHttp], private_redis: RedisServer
) -> None:
    a, _ = two_replicas
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(200)) + " }"  # too many aliases
    await post(a, apq(query, sha256_hex(query)))
    client = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        assert await client.keys(f"{KEY_PREFIX}:persisted-documents:*") == []
    finally:
        await client.aclose()


async def test_with_redis_killed_an_unknown_hash_asks_for_the_query_which_then_runs(
    two_replicas: tuple[GatewayHttp, GatewayHttp], private_redis: RedisServer, ucd_calls: CallLog
) -> None:
    a, b = two_replicas
    known = '{ user(key: {uuid: "known-apq"}) { name } }'
    await post(a, apq(known, sha256_hex(known)))
    private_redis.stop()
    # A registered it: its own memory answers, Redis or not.
    assert await post(a, apq(None, sha256_hex(known))) == NOBODY
    # B never saw it: Apollo's link gets PersistedQueryNotFound and sends the query.
    new = '{ user(key: {uuid: "new-apq"}) { name } }'
    missing = await post(b, apq(None, sha256_hex(new)))
    assert missing["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert missing["errors"][0]["message"] == "PersistedQueryNotFound"
    calls = len(ucd_calls.to(PROFILE_PATH_CALLS))
    assert await post(b, apq(new, sha256_hex(new))) == NOBODY
    assert len(ucd_calls.to(PROFILE_PATH_CALLS)) == calls + 1  # it really ran
    assert await post(b, apq(None, sha256_hex(new))) == NOBODY
    private_redis.start()  # empty: nothing of before survives
    assert await post(b, apq(None, sha256_hex(new))) == NOBODY  # local
    fresh = '{ user(key: {uuid: "after-apq"}) { name } }'
    await post(b, apq(fresh, sha256_hex(fresh)))
    assert await post(a, apq(None, sha256_hex(fresh))) == NOBODY  # shared


async def test_the_local_copy_answers_without_asking_redis_again() -> None:
    class CountingState:
        def __init__(self) -> None:
            self.gets = 0

        async def get(self, namespace: object, key: str) -> bytes | None:
            self.gets += 1
            return b"{ __typename }"

    state = CountingState()
    store = SharedDocumentStore(state, MemoryDocumentStore(1_000), ttl=60)  # type: ignore[arg-type]
    assert await store.get("h") == "{ __typename }"
    assert await store.get("h") == "{ __typename }"
    assert state.gets == 1
