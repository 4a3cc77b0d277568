"""One process for ``bench/callgrind_reads.py`` to run under callgrind.

``python -m bench._callgrind_worker CASE N``: the gateway and the local UCD in
this process (``bench.gateway_calls._gateway``), 50 seeded users (the first with 100
purchase events of 6 fields), one warm-up request of CASE, then N requests of it.
The caller sets ``UCD_GATEWAY_COMPILED_EXECUTION`` in the environment (or not, for a
commit that predates it), and ``BENCH_CALLER``: ``anonymous`` (no authentication
configured, the default) or ``api-key`` (a keys file, every request with a key holding
``profile:read`` and ``pii:read``, as a production caller reads ``name email``). Under
callgrind
(``BENCH_UNDER_CALLGRIND=1``) the counters are zeroed after the warm-up and dumped after
the N requests, so the dump counts those requests alone. ``BENCH_LOG_FORMAT`` (``text``
or ``json``) configures logging as ``ucd-gateway serve`` does, at INFO, to stderr;
without it nothing is logged at INFO (no handler), as in the figures before it existed.
``BENCH_CPROFILE_OUT``: a cProfile (CPU time) of the N requests alone, written there
(``bench/served_profile.py``'s ``seconds_by_component`` sorts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from bench.gateway_calls import PARTNER, TOKEN, _graphql
from gateway.app import create_app
from gateway.auth.api_keys import sha256_hex
from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.transport import LocalUcdTransport
from gateway.logs import configure_logging
from gateway.settings import Settings

USERS = 50
#: The warm-up request's index: none of the N requests has it.
WARM_UP = 999_999
EVENTS = 100
READ = "query($u: String!) { user(key: {uuid: $u}) { name email } }"
EVENTS_READ = (
    'query($u: String!) { user(key: {uuid: $u}) { events(names: ["purchase"]) '
    "{ timestamp productId currency unitSalePrice quantity eventGroupId } } }"
)
UPSERT = "mutation($i: UpsertUsersInput!) { upsertUsers(input: $i) { failureCount } }"
#: The bench caller's API key (``BENCH_CALLER=api-key``): reads with PII, and seeds.
API_KEY = "ucdg_bench-callgrind-reader"
KEYS_TOML = f"""[[keys]]
id = "bench"
sha256 = "{sha256_hex(API_KEY)}"
scopes = ["profile:read", "pii:read", "profile:write"]
"""


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
async def _gateway(data_dir: Path, caller: str) -> AsyncIterator[httpx.AsyncClient]:
    """``bench.gateway_calls``' in-process pair, with lifespan timeouts callgrind's pace
    needs (the lifespans' default 5 s is not enough under it, to start or to stop: a timed-out
    stop prints a traceback, whose instructions would count); with ``caller`` api-key,
    authentication on and the client sending the key."""
    keys: Path | None = None
    headers: dict[str, str] = {}
    if caller == "api-key":
        keys = data_dir / "api-keys.toml"
        keys.write_text(KEYS_TOML)
        headers["Authorization"] = f"Bearer {API_KEY}"
    elif caller != "anonymous":
        raise SystemExit(f"BENCH_CALLER: anonymous or api-key, not {caller!r}")
    ucd_app = create_local_ucd_app(LocalUcdConfig(data_dir=data_dir, partners={PARTNER: (TOKEN,)}))
    async with LifespanManager(ucd_app, startup_timeout=600, shutdown_timeout=600) as ucd_manager:
        ucd_http = httpx.AsyncClient(
            transport=LocalUcdTransport(ucd_manager.app), base_url="http://local-ucd"
        )
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            ucd_base_url="http://local-ucd",
            partner=PARTNER,
            token=SecretStr(TOKEN),
            operation_timeout=600,
            api_keys_file=keys,
        )
        app = create_app(settings, http_client=ucd_http)
        async with (
            LifespanManager(app, startup_timeout=600, shutdown_timeout=600) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(manager.app),
                base_url="http://gateway",
                headers=headers,
            ) as client,
        ):
            yield client
        await ucd_http.aclose()


async def _main(case: str, count: int) -> None:
    log_format = os.environ.get("BENCH_LOG_FORMAT")
    if log_format is not None:
        configure_logging("info", log_format)
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as data_dir:
        caller = os.environ.get("BENCH_CALLER", "anonymous")
        async with _gateway(Path(data_dir), caller) as client:
            seeded = await _graphql(client, UPSERT, {"i": {"users": _users()}})
            assert seeded["upsertUsers"]["failureCount"] == 0
            # Warm-up, in both counts; an index no request uses (a new document stays new).
            await _graphql(client, *_request(case, WARM_UP))
            profile_out = os.environ.get("BENCH_CPROFILE_OUT")
            profile = cProfile.Profile(time.thread_time) if profile_out else None
            if profile is not None:
                profile.enable()
            for i in range(count):
                await _graphql(client, *_request(case, i))
            if profile is not None and profile_out:
                profile.disable()
                profile.dump_stats(profile_out)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2])))
