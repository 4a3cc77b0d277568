"""UCD calls per GraphQL operation: the gateway's coalescing, counted.

The gateway and the local UCD run in this process (the local UCD behind
``LocalUcdTransport``, the gateway app behind ``httpx.ASGITransport``), and an httpx event
hook counts every request the gateway sends to the UCD. The counts are deterministic; the
tests assert the same numbers (tests/gateway/test_queries.py, test_mutations.py,
test_upserts.py, test_reads.py). ``python -m bench gateway_calls``.
"""

from __future__ import annotations

import asyncio
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

# Twenty selected fields of one user: 16 typed attributes, identifiers, two generic
# attribute fields and one events selection.
TWENTY_FIELDS = """
query($email: String!) {
  user(key: {email: $email}) {
    insiderId email phoneNumber uuid name surname birthday gender age language country
    city locale emailOptin smsOptin gdprOptin
    identifiers { type value }
    tier: attribute(name: "tier", custom: true) { value }
    staticSegmentIds
    events(names: ["purchase"]) { name timestamp productId }
  }
}
"""
USERS_QUERY = "query($keys: [UserKey!]!) { users(keys: $keys) { insiderId name } }"
UPSERT = """
mutation($input: UpsertUsersInput!) {
  upsertUsers(input: $input) { successCount failureCount }
}
"""


def _user(i: int) -> dict[str, Any]:
    return {
        "key": {"email": f"user{i}@example.com"},
        "attributes": {
            "name": f"User {i}",
            "city": "Izmir",
            "custom": [{"name": "tier", "value": "gold"}],
        },
        "events": [
            {
                "name": "purchase",
                "timestamp": "2026-11-20T10:00:00Z",
                "productId": f"P-{i}",
                "currency": "EUR",
                "unitSalePrice": 10.0,
                "eventGroupId": f"O-{i}",
            }
        ],
    }


@asynccontextmanager
async def _gateway(data_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Counter[str]]]:
    calls: Counter[str] = Counter()

    async def count(request: httpx.Request) -> None:
        calls[request.url.path] += 1

    ucd_app = create_local_ucd_app(LocalUcdConfig(data_dir=data_dir, partners={PARTNER: (TOKEN,)}))
    async with LifespanManager(ucd_app) as ucd_manager:
        ucd_http = httpx.AsyncClient(
            transport=LocalUcdTransport(ucd_manager.app),
            base_url="http://local-ucd",
            event_hooks={"request": [count]},
        )
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            ucd_base_url="http://local-ucd",
            partner=PARTNER,
            token=SecretStr(TOKEN),
            max_query_depth=12,
        )
        gateway_app = create_app(settings, http_client=ucd_http)
        async with (
            LifespanManager(gateway_app) as gateway_manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(gateway_manager.app), base_url="http://gateway"
            ) as client,
        ):
            yield client, calls
        await ucd_http.aclose()


async def _graphql(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"GraphQL failed: {response.status_code} {body.get('errors')}")
    return body["data"]


async def _measure(data_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with _gateway(data_dir) as (client, calls):

        async def measure(label: str, operation: Any) -> None:
            calls.clear()
            start = time.perf_counter()
            await operation()
            rows.append(
                {
                    "operation": label,
                    "ucd_calls": dict(calls),
                    "seconds": round(time.perf_counter() - start, 3),
                }
            )

        await measure(
            "upsertUsers with 2,500 users (one mutation)",
            lambda: _graphql(client, UPSERT, {"input": {"users": [_user(i) for i in range(2500)]}}),
        )
        await measure(
            "one user, 20 selected fields",
            lambda: _graphql(client, TWENTY_FIELDS, {"email": "user7@example.com"}),
        )
        keys = [{"email": f"user{i % 40}@example.com"} for i in range(50)]
        await measure(
            "users(keys) with 50 keys, 10 of them repeats",
            lambda: _graphql(client, USERS_QUERY, {"keys": keys}),
        )

        async def concurrent_upserts() -> None:
            await asyncio.gather(
                *(
                    _graphql(client, UPSERT, {"input": {"users": [_user(10_000 + i)]}})
                    for i in range(200)
                )
            )

        await measure("200 concurrent single-user upsertUsers requests", concurrent_upserts)
    return rows


def run() -> dict[str, Any]:
    """Count the UCD calls of each operation; print a markdown table and return the rows."""
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as data_dir:
        rows = asyncio.run(_measure(Path(data_dir)))
    print("| operation | UCD calls | seconds (in-process) |")
    print("|---|---|---:|")
    for row in rows:
        calls = ", ".join(f"{n} × `{path}`" for path, n in sorted(row["ucd_calls"].items()))
        print(f"| {row['operation']} | {calls} | {row['seconds']} |")
    return {"rows": rows}


if __name__ == "__main__":
    run()
