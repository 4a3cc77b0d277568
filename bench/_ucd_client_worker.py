"""One client process for ``bench/ucd_client.py`` (run natively or under callgrind).

``python bench/_ucd_client_worker.py TRANSPORT MODE N BASE_URL``: ``UcdClient`` on
``build_http_client`` with ``UCD_GATEWAY_HTTP_TRANSPORT=TRANSPORT``, on uvloop (the loop
of served processes); ``lean-httpx`` is ``lean`` with a request event hook that does
nothing, so every call goes through httpx's objects onto the lean pool (the transport
seam alone); a warm-up of 100 calls, then N E2 profile calls (``name``,
``email`` of one seeded user), ``seq`` one after another or ``conc`` 8 at a time. Prints
``cpu_us=<process CPU µs of the N calls> wall_us=<...>``. Under callgrind the caller runs
it with N and with 0: the difference is what N calls cost.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from typing import Any

import httpx
import uvloop
from pydantic import SecretStr

from gateway.settings import Settings
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.client import UcdClient
from gateway.ucd.requests import ProfileRequest, UserRef
from gateway.ucd.transport import build_http_client

PARTNER = "local"
TOKEN = "bench-peers-token"  # bench/peers.py's local UCD token
UUID = "bench-ucd-client"
CONCURRENCY = 8
WARM_UP = 100


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _check(answer: ProfileAnswer | None) -> None:
    if answer is None or answer.attributes.get("name") != "Bench":
        raise RuntimeError("the local UCD did not answer the seeded user")


async def _calls(client: UcdClient, count: int, mode: str) -> None:
    request = ProfileRequest(UserRef(uuid=UUID), attributes=("name", "email"))
    if mode == "seq":
        for _ in range(count):
            _check(await client.profile(request))
        return
    left = count

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            _check(await client.profile(request))

    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))


async def _nothing(request: httpx.Request) -> None:
    pass


async def main(transport: str, mode: str, count: int, base_url: str) -> None:
    # Validated by Settings: an unknown transport name fails here.
    values: dict[str, Any] = {
        "http_transport": "lean" if transport == "lean-httpx" else transport,
        "partner": PARTNER,
        "token": SecretStr(TOKEN),
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    async with build_http_client(settings, base_url=base_url) as http:
        if transport == "lean-httpx":
            http.event_hooks["request"].append(_nothing)
        client = UcdClient(http, partner=PARTNER, token=TOKEN)
        await _calls(client, WARM_UP, mode)
        cpu, wall = _cpu(), time.perf_counter()
        await _calls(client, count, mode)
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    print(f"cpu_us={cpu * 1e6:.0f} wall_us={wall * 1e6:.0f}", flush=True)


if __name__ == "__main__":
    transport_name, mode_name, n, url = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(transport_name, mode_name, n, url))
