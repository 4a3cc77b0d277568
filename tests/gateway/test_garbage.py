"""A request's objects are freed by reference counting, not left to the cyclic collector.

Under overload a reference cycle per request (the profile loader and its DataLoader, with
every key and future they held) made CPython run a full collection about 3 times a
second, 15-50 ms each with the event loop stopped: the tail of the refusals' latency in
bench/README.md ("Overload"). These tests run requests with the collector off and then
ask it what it would have had to free.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

import pytest

from gateway.reads.cache import ProfileCache
from gateway.reads.inflight import ProfileReads
from gateway.reads.loader import ProfileLoader
from gateway.reads.need import ProfileNeed
from gateway.state.memory import MemoryState
from gateway.ucd.client import UcdClient
from gateway.ucd.requests import UserRef
from tests.gateway.conftest import GatewayHttp, UcdWire, fail_when_body_mentions, put_users

#: Modules whose objects a request makes; none of them may be left in a cycle.
REQUEST_MODULES = ("gateway.", "aiodataloader", "_asyncio", "graphql.", "strawberry.")


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The collector stopped (what is unreachable stays until ``cyclic_garbage``)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def cyclic_garbage() -> Counter[str]:
    """What a collection now would free, by type (module-qualified), request types only."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = Counter(f"{type(x).__module__}.{type(x).__qualname__}" for x in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return Counter({name: n for name, n in found.items() if name.startswith(REQUEST_MODULES)})


async def garbage_of(request: Callable[[], Awaitable[object]], times: int = 20) -> Counter[str]:
    """``cyclic_garbage`` after ``times`` requests made with the collector off."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(times):
            await request()
        await asyncio.sleep(0)  # callbacks of the last request's futures
        return cyclic_garbage()
    finally:
        gc.enable()


@pytest.mark.parametrize("cached", [False, True], ids=["reads", "profile-cache"])
@pytest.mark.usefixtures("collector_off")
async def test_a_profile_loader_is_freed_when_its_request_drops_it(
    ucd: UcdClient, cached: bool
) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "g-1"}, "attributes": {"name": "Ada"}})
    reads = ProfileReads(ucd)
    cache = ProfileCache(MemoryState(), reads, ttl=60, secret=b"k") if cached else None
    loader = ProfileLoader(reads, cache)
    answer = await loader.load(UserRef.of(uuid="g-1"), ProfileNeed(frozenset({"name"})))
    assert answer is not None
    assert answer.attributes["name"] == "Ada"
    gone = weakref.ref(loader)
    del loader
    assert gone() is None  # freed here, by reference counting
    assert cyclic_garbage() == Counter()


READ = '{ user(key: {uuid: "g-1"}) { insiderId name } }'
READ_MANY = '{ users(keys: [{uuid: "g-1"}, {uuid: "g-2"}, {uuid: "nobody"}]) { name } }'
#: Fragments and events: the selection walk and graphql-core's executor, not the compiled path.
FRAGMENTS = (
    '{ user(key: {uuid: "g-1"}) { ...F events(names: ["view"], last: 2) { name } } }'
    ' fragment F on User { name attribute(name: "city") { value } }'
)
UPSERT = (
    'mutation { upsertUsers(input: {users: [{key: {uuid: "g-2"}, attributes: {name: "Bo"}}]})'
    " { successCount } }"
)
DELETE = (
    'mutation { deleteAttributes(users: [{key: {uuid: "g-2"}, names: ["surname"]}])'
    " { successCount } }"
)
#: Refused before any UCD call (BAD_USER_INPUT), and refused by validation.
BAD_INPUT = '{ user(key: {uuid: "g-1"}) { events(names: ["view"], last: -1) { name } } }'
INVALID = '{ user(key: {uuid: "g-1"}) { nope } }'


@pytest.mark.parametrize(
    "query",
    [READ, READ_MANY, FRAGMENTS, UPSERT, DELETE, BAD_INPUT, INVALID],
    ids=["user", "users", "fragments", "upsert", "delete", "bad-input", "invalid"],
)
async def test_requests_leave_no_cyclic_garbage(gateway_http: GatewayHttp, query: str) -> None:
    await gateway_http.post(UPSERT)
    await gateway_http.post(query)  # a document's first use validates it: cycles, once
    assert await garbage_of(lambda: gateway_http.post(query)) == Counter()


async def test_a_failed_ucd_call_leaves_no_cyclic_garbage(
    gateway_http: GatewayHttp, ucd_transport: UcdWire
) -> None:
    """The error path: the exception chain of a refused connection, the error it becomes."""
    ucd_transport.fail = fail_when_body_mentions("g-down")
    query = '{ user(key: {uuid: "g-down"}) { name } }'
    first = await gateway_http.post(query)
    assert first["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert await garbage_of(lambda: gateway_http.post(query)) == Counter()
