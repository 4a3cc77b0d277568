"""A large answer through the gateway: one user with 1,000 events of 5 parameters.

docs/perf-notes.md puts result completion at ~10 µs per output object; this measures
what a frontend pays for a long event list, end to end in-process (gateway app and local
UCD in this process, so the time includes the local UCD's work too), against the same
profile call sent straight to the local UCD. ``python -m bench gateway_large_profile``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.gateway_calls import _gateway, _graphql

EVENTS = 1000
ROUNDS = 30
QUERY = """
query($email: String!, $from: DateTime!, $last: Int) {
  user(key: {email: $email}) {
    name
    events(names: ["purchase"], from: $from, last: $last) {
      timestamp productId currency unitSalePrice quantity eventGroupId
    }
  }
}
"""


def _events(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "name": "purchase",
            "timestamp": (now - timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "productId": f"P-{i}",
            "currency": "EUR",
            "unitSalePrice": 10.5,
            "quantity": 1 + i % 3,
            "eventGroupId": f"O-{i}",
        }
        for i in range(EVENTS)
    ]


async def _measure(data_dir: Path) -> list[dict[str, Any]]:
    now = datetime.now(UTC).replace(microsecond=0)
    since = (now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows: list[dict[str, Any]] = []
    async with _gateway(data_dir) as (client, _calls):
        upsert = "mutation($i: UpsertUsersInput!) { upsertUsers(input: $i) { successCount } }"
        user = {"key": {"email": "big@example.com"}, "attributes": {"name": "Big"}}
        await _graphql(client, upsert, {"i": {"users": [{**user, "events": _events(now)}]}})
        for label, last in (("all 1,000 events", None), ("last: 20", 20)):
            variables = {"email": "big@example.com", "from": since, "last": last}
            await _graphql(client, QUERY, variables)  # warm-up
            times: list[float] = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                data = await _graphql(client, QUERY, variables)
                times.append((time.perf_counter() - start) * 1000)
            count = len(data["user"]["events"])
            rows.append(
                {
                    "query": label,
                    "events": count,
                    "p50_ms": statistics.median(times),
                    "max_ms": max(times),
                }
            )
    return rows


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-large-") as data_dir:
        rows = asyncio.run(_measure(Path(data_dir)))
    print(f"One user, {EVENTS} purchase events, 6 event fields selected; {ROUNDS} requests each.")
    print()
    print("| query | events returned | p50 ms | max ms |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['query']} | {row['events']} | {row['p50_ms']:.1f} | {row['max_ms']:.1f} |")
    return {"rows": rows}


if __name__ == "__main__":
    run()
