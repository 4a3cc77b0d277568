"""One process for ``bench/callgrind_reads.py`` to run under callgrind.

``python -m bench._callgrind_worker CASE N``: the gateway and the local UCD in
this process (``bench.gateway_calls._gateway``), 50 seeded users (the first with 100
purchase events of 6 fields), one warm-up request of CASE, then N requests of it.
The caller sets ``UCD_GATEWAY_COMPILED_EXECUTION`` in the environment (or not, for a
commit that predates it). Under callgrind
(``BENCH_UNDER_CALLGRIND=1``) the counters are zeroed after the warm-up and dumped after
the N requests, so the dump counts those requests alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from bench.gateway_calls import PARTNER, TOKEN, _graphql
from gateway.app import create_app
from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.transport import LocalUcdTransport
from gateway.settings import Settings

USERS = 50
EVENTS = 100
READ = "query($u: String!) { user(key: {uuid: $u}) { name email } }"
EVENTS_READ = (
    'query($u: String!) { user(key: {uuid: $u}) { events(names: ["purchase"]) '
    "{ timestamp productId currency unitSalePrice quantity eventGroupId } } }"
)
UPSERT = "mutation($i: UpsertUsersInput!) { upsertUsers(input: $i) { failureCount } }"


def _users() -> list[dict[str, Any]]:
    now = datetime.now(UTC).replace(microsecond=0)
    events = [
        {
            "name": "purchase",
            "timestamp": (now - timedelta(minutes=i + 1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "productId": f"P-{i}",
            "currency": "EUR",
            "unitSalePrice": 10.5,
            "quantity": 1 + i % 3,
            "eventGroupId": f"O-{i}",
        }
        for i in range(EVENTS)
    ]
    return [
        {
            "key": {"uuid": f"u-{i}"},
            "attributes": {"name": f"User {i}", "email": f"user{i}@example.com"},
            **({"events": events} if i == 0 else {}),
        }
        for i in range(USERS)
    ]


def _request(case: str, i: int) -> tuple[str, dict[str, Any]]:
    if case == "read":
        return READ, {"u": f"u-{i % USERS}"}
    if case == "events":
        return EVENTS_READ, {"u": "u-0"}
    # A new document every request: the uuid in the text, and an alias that never repeats.
    return f'{{ r{i}: user(key: {{uuid: "u-{i % USERS}"}}) {{ name email }} }}', {}


@contextlib.asynccontextmanager
async def _gateway(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """``bench.gateway_calls``' in-process pair, with start-up timeouts callgrind's pace
    needs (the lifespans' default 5 s is not enough under it)."""
    ucd_app = create_local_ucd_app(LocalUcdConfig(data_dir=data_dir, partners={PARTNER: (TOKEN,)}))
    async with LifespanManager(ucd_app, startup_timeout=600) as ucd_manager:
        ucd_http = httpx.AsyncClient(
            transport=LocalUcdTransport(ucd_manager.app), base_url="http://local-ucd"
        )
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            ucd_base_url="http://local-ucd",
            partner=PARTNER,
            token=SecretStr(TOKEN),
            operation_timeout=600,
        )
        app = create_app(settings, http_client=ucd_http)
        async with (
            LifespanManager(app, startup_timeout=600) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(manager.app), base_url="http://gateway"
            ) as client,
        ):
            yield client
        await ucd_http.aclose()


async def _main(case: str, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as data_dir:
        async with _gateway(Path(data_dir)) as client:
            seeded = await _graphql(client, UPSERT, {"i": {"users": _users()}})
            assert seeded["upsertUsers"]["failureCount"] == 0
            await _graphql(client, *_request(case, -1))  # warm-up, in both counts
            for i in range(count):
                await _graphql(client, *_request(case, i))


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2])))
