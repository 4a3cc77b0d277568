"""Read-your-writes across replicas with the profile cache on: three ``ucd-gateway serve``
processes, one real Redis, one ``ucd-gateway local-ucd`` process. And erasure through
one replica leaving no byte of the user's email or phone in the Redis they share.

Users are written through one replica and read right after, through another, by another
of their identifiers, while readers on every replica keep reading the same users (so
answers read before a write race the write's invalidation). Not one read made after a
write's answer may show what was there before it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.gateway.cache_helpers import redis_bytes
from tests.gateway.processes import local_ucd, started
from tests.gateway.redis_server import RedisServer

#: Write-then-read pairs per run, as the issue asks (13-21 s on a loaded 2-core box).
PAIRS = 1000
USERS = 25
#: Users written and read at the same time, each by its own sequence of pairs.
CONCURRENT_USERS = 4

UPSERT = """
mutation($key: UserKey!, $name: String!, $surname: String!) {
  upsertUsers(input: {users: [{key: $key, attributes: {name: $name, surname: $surname}}]}) {
    failureCount
  }
}
"""
DELETE_SURNAME = """
mutation($key: UserKey!) {
  deleteAttributes(users: [{key: $key, names: ["surname"]}]) { failureCount }
}
"""
SEED = """
mutation($key: UserKey!, $email: String!, $phone: String!) {
  upsertUsers(input: {users: [{key: $key, attributes: {email: $email, phoneNumber: $phone,
    name: "seed"}}]}) { failureCount }
}
"""
READ = "query($key: UserKey!) { user(key: $key) { insiderId name surname } }"


@dataclass(frozen=True)
class Person:
    keys: tuple[dict[str, str], ...]  # email, phoneNumber, uuid, insiderId


@pytest.fixture(scope="module")
def replicas(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ...]]:
    folder = tmp_path_factory.mktemp("cache-replicas")
    with local_ucd(folder) as ucd:

        def replica(name: str) -> Any:
            settings = {
                "UCD_GATEWAY_UCD_BASE_URL": ucd,
                "UCD_GATEWAY_REDIS_URL": redis_server.url,
                "UCD_GATEWAY_PROFILE_CACHE_TTL": "300",
                "UCD_GATEWAY_LOCAL_UCD_DATA_DIR": str(folder / name),
            }
            return started(["serve", "--port", "0"], settings, folder / f"{name}.log")

        with replica("a") as a, replica("b") as b, replica("c") as c:
            yield (a, b, c)


async def post(client: httpx.AsyncClient, url: str, query: str, **variables: Any) -> Any:
    response = await client.post(f"{url}/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body


async def seeded(client: httpx.AsyncClient, url: str, n: int) -> Person:
    email, phone, uuid = f"replica.{n}@example.com", f"+4917000{n:05d}", f"replica-{n}"
    body = await post(client, url, SEED, key={"uuid": uuid}, email=email, phone=phone)
    assert body["data"]["upsertUsers"]["failureCount"] == 0
    read = await post(client, url, READ, key={"uuid": uuid})
    iid = read["data"]["user"]["insiderId"]
    return Person(({"email": email}, {"phoneNumber": phone}, {"uuid": uuid}, {"insiderId": iid}))


async def test_no_read_after_a_write_is_stale_on_any_replica(
    replicas: tuple[str, ...],
) -> None:
    rng = random.Random(11)  # a reproducible workload, not a secret
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        people = [await seeded(client, replicas[n % 3], n) for n in range(USERS)]
        stale: list[str] = []
        hits = 0
        done = asyncio.Event()

        async def noise(person: Person) -> None:
            # Keeps each user's entry in the cache and races the writes' invalidation.
            nonlocal hits
            while not done.is_set():
                body = await post(client, rng.choice(replicas), READ, key=rng.choice(person.keys))
                hits += body["extensions"]["cost"]["ucdCalls"].get("cacheHits", 0)
                await asyncio.sleep(0.005)  # a reader, not a load test of the local UCD

        async def pairs(person: Person, count: int, label: int) -> None:
            nonlocal hits
            for i in range(count):
                writer, reader = rng.sample(replicas, 2)
                write_key = rng.choice(person.keys[:3])  # upserts name email, phone or uuid
                read_key = rng.choice([k for k in person.keys if k != write_key])
                name = f"n{label}-{i}"
                if i % 5 == 4:
                    body = await post(client, writer, DELETE_SURNAME, key=write_key)
                    assert body["data"]["deleteAttributes"]["failureCount"] == 0
                    expected_surname = None
                else:
                    expected_surname = f"s{label}-{i}"
                    body = await post(
                        client, writer, UPSERT, key=write_key, name=name, surname=expected_surname
                    )
                    assert body["data"]["upsertUsers"]["failureCount"] == 0
                body = await post(client, reader, READ, key=read_key)
                user = body["data"]["user"]
                hits += body["extensions"]["cost"]["ucdCalls"].get("cacheHits", 0)
                want_name = name if expected_surname is not None else user["name"]
                if (user["name"], user["surname"]) != (want_name, expected_surname):
                    stale.append(f"{read_key} on {reader} after {write_key} on {writer}: {user}")
                # After a delete, the name written by the pair before still shows.
                if expected_surname is None and i and user["name"] != f"n{label}-{i - 1}":
                    stale.append(f"name of {read_key} on {reader}: {user}")

        started_at = time.monotonic()
        per_user = PAIRS // CONCURRENT_USERS
        noisy = [asyncio.create_task(noise(person)) for person in people[:CONCURRENT_USERS]]
        try:
            await asyncio.gather(*(pairs(people[n], per_user, n) for n in range(CONCURRENT_USERS)))
        finally:
            done.set()
            await asyncio.gather(*noisy)
        elapsed = time.monotonic() - started_at
    assert per_user * CONCURRENT_USERS == PAIRS
    assert stale == [], f"{len(stale)} stale reads of {PAIRS}: {stale[:5]}"
    # The cache took part: the readers' repeated reads between writes hit it.
    assert hits > 0, "no read was answered from the cache"
    print(f"{PAIRS} pairs in {elapsed:.1f} s, {hits} reads answered from the cache")


async def test_erasure_on_one_replica_leaves_no_byte_of_the_user_in_redis(
    replicas: tuple[str, ...], redis_server: RedisServer
) -> None:
    a, b, c = replicas
    every = "query($key: UserKey!) { user(key: $key) { insiderId email phoneNumber name } }"
    async with httpx.AsyncClient(timeout=30) as client:
        person = await seeded(client, a, 900)
        email, phone = person.keys[0]["email"], person.keys[1]["phoneNumber"]
        # Cached by every replica, under every identifier.
        for url, key in zip((a, b, c), person.keys[:3], strict=True):
            body = await post(client, url, every, key=key)
            assert body["data"]["user"]["email"] == email
        pii = (email.encode(), phone.encode())
        # The replicas hold no cached profile in their own memory (ProfileCache keeps
        # everything in the state store), so Redis is all of the cache.
        assert [blob for blob in redis_bytes(redis_server.url) for p in pii if p in blob]
        erase = "mutation($key: UserKey!) { deletePii(key: $key) { ok } }"
        body = await post(client, a, erase, key=person.keys[2])
        assert body["data"] == {"deletePii": {"ok": True}}
        assert not [blob for blob in redis_bytes(redis_server.url) for p in pii if p in blob]
        for url in (a, b, c):
            for key in person.keys[2:]:
                user = (await post(client, url, every, key=key))["data"]["user"]
                assert (user["email"], user["phoneNumber"]) == (None, None)
        assert not [blob for blob in redis_bytes(redis_server.url) for p in pii if p in blob]
