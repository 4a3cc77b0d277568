"""The profile cache under a Zipf-distributed read workload, on and off, side by side.

10,000 users; each operation reads one user (``name city``), the user drawn from a Zipf
distribution (s = 1.1: a few users are read again and again, as personalization reads
them) and named by a random one of its identifiers (email, phone, uuid), so the cache's
aliases take part. The same seeded sequence runs against a gateway without the cache
and one with ``UCD_GATEWAY_PROFILE_CACHE_TTL`` set (in-process state), both in this
process over the same local UCD (``LocalUcdTransport``); an httpx event hook counts the
E2 calls. Calls per operation are deterministic but for the races of concurrent first
reads of one user; requests per second are wall-clock under load from 32 concurrent
clients in one process, so only the ratio between the two rows means much, and only on
a quiet machine. ``python -m bench profile_cache``; ``BENCH_CACHE_OPS`` sets the count.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from gateway.app import create_app
from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.transport import LocalUcdTransport
from gateway.settings import Settings

PARTNER = "bench"
TOKEN = "bench-token"
USERS = 10_000
ZIPF_S = 1.1
CLIENTS = 32
SEED = 1_100
PROFILE_PATH = "/api/user/v1/profile"

READ = "query($key: UserKey!) { user(key: $key) { name city } }"
UPSERT = """
mutation($input: UpsertUsersInput!) {
  upsertUsers(input: $input) { failureCount }
}
"""


def _keys(i: int) -> list[dict[str, str]]:
    return [
        {"email": f"zipf{i}@example.com"},
        {"phoneNumber": f"+90555{i:07d}"},
        {"uuid": f"zipf-{i}"},
    ]


def _user(i: int) -> dict[str, Any]:
    email, phone, uuid = _keys(i)
    return {
        "key": uuid,
        "attributes": {
            "email": email["email"],
            "phoneNumber": phone["phoneNumber"],
            "name": f"User {i}",
            "city": "Izmir",
        },
    }


def workload(operations: int) -> list[dict[str, str]]:
    """The keys read, in order: users by Zipf rank, each by a random identifier."""
    rng = random.Random(SEED)  # a reproducible workload, not a secret
    weights = list(itertools.accumulate(1 / rank**ZIPF_S for rank in range(1, USERS + 1)))
    users = rng.choices(range(USERS), cum_weights=weights, k=operations)
    return [rng.choice(_keys(user)) for user in users]


@asynccontextmanager
async def _gateway(
    ucd_http: httpx.AsyncClient, data_dir: Path, ttl: float | None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        ucd_base_url="http://local-ucd",
        partner=PARTNER,
        token=SecretStr(TOKEN),
        local_ucd_data_dir=data_dir,
        profile_cache_ttl=ttl,
        max_concurrency=CLIENTS,
    )
    app = create_app(settings, http_client=ucd_http)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(manager.app), base_url="http://gateway", timeout=60
        ) as client,
    ):
        yield client


async def _graphql(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"GraphQL failed: {response.status_code} {body.get('errors')}")
    return body


async def _run(client: httpx.AsyncClient, keys: list[dict[str, str]]) -> tuple[float, int]:
    """Seconds for every read, CLIENTS at a time; the reads the cache answered."""
    queue = iter(keys)
    hits = 0

    async def reader() -> None:
        nonlocal hits
        for key in queue:
            body = await _graphql(client, READ, {"key": key})
            hits += body["extensions"]["cost"]["ucdCalls"].get("cacheHits", 0)

    start = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(CLIENTS)))
    return time.perf_counter() - start, hits


async def _measure(folder: Path, operations: int) -> list[dict[str, Any]]:
    calls: Counter[str] = Counter()

    async def count(request: httpx.Request) -> None:
        calls[request.url.path] += 1

    keys = workload(operations)
    rows: list[dict[str, Any]] = []
    config = LocalUcdConfig(data_dir=folder / "ucd", partners={PARTNER: (TOKEN,)})
    async with LifespanManager(create_local_ucd_app(config)) as ucd_manager:
        ucd_http = httpx.AsyncClient(
            transport=LocalUcdTransport(ucd_manager.app),
            base_url="http://local-ucd",
            event_hooks={"request": [count]},
        )
        async with _gateway(ucd_http, folder / "seed", None) as client:
            for start in range(0, USERS, 1_000):
                users = [_user(i) for i in range(start, start + 1_000)]
                await _graphql(client, UPSERT, {"input": {"users": users}})
        for label, ttl in (("off", None), ("on (in-process state)", 600.0)):
            async with _gateway(ucd_http, folder / label.split()[0], ttl) as client:
                calls.clear()
                seconds, hits = await _run(client, keys)
                rows.append(
                    {
                        "cache": label,
                        "operations": operations,
                        "profile_calls": calls[PROFILE_PATH],
                        "hits": hits,
                        "rps": round(operations / seconds),
                    }
                )
        await ucd_http.aclose()
    distinct = len({tuple(sorted(key.items())) for key in keys})
    rows.append({"distinct_keys": distinct})
    return rows


def run() -> dict[str, Any]:
    """Run the workload with the cache off and on; print a markdown table."""
    operations = int(os.environ.get("BENCH_CACHE_OPS", "5000"))
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as folder:
        rows = asyncio.run(_measure(Path(folder), operations))
    *measured, info = rows
    print(
        f"{operations:,} reads of {USERS:,} users, Zipf s = {ZIPF_S}, {CLIENTS} concurrent "
        f"clients; {info['distinct_keys']:,} distinct keys read.\n"
    )
    print(
        "| cache | UCD profile calls | calls per operation | cache hits "
        + "| rps (in-process, under load) |"
    )
    print("|---|---:|---:|---:|---:|")
    for row in measured:
        per_op = row["profile_calls"] / row["operations"]
        print(
            f"| {row['cache']} | {row['profile_calls']:,} | {per_op:.3f} | {row['hits']:,} "
            f"| {row['rps']:,} |"
        )
    return {"rows": rows}


if __name__ == "__main__":
    run()
