"""Helpers of the profile cache's tests (tests/gateway/test_profile_cache.py and
tests/gateway/auth/test_profile_cache_pii.py): users of one test alone, and every byte
the cache's store holds, to look for erased PII in."""

from __future__ import annotations

import itertools

from redis import Redis

from gateway.state.memory import MemoryState
from gateway.state.protocol import Namespace
from tests.gateway.conftest import GatewayHttp

__all__ = ["person", "redis_bytes", "stored_bytes"]

_serial = itertools.count()


def person() -> dict[str, str]:
    """A user of this test alone: identifiers no other test of this process writes (the
    tests of one process share a Redis, and insiderIds are random, so no two tests'
    entries or aliases meet)."""
    n = next(_serial)
    return {
        "email": f"cache.person{n}@example.com",
        "phoneNumber": f"+4915100{n:05d}",
        "uuid": f"cache-uuid-{n}",
    }


def stored_bytes(gateway: GatewayHttp) -> list[bytes]:
    """Every key and value the cache's store holds (Redis: SCAN, then DUMP and, since
    DUMP may compress a value with LZF, GET of the strings as well)."""
    runtime = gateway.runtime
    assert runtime.cache is not None
    state = runtime.cache.state
    if isinstance(state, MemoryState):
        records = state.records(Namespace.PROFILE_CACHE)
        return [key.encode() for key in records] + list(records.values())
    assert runtime.settings.redis_url is not None
    return redis_bytes(runtime.settings.redis_url.get_secret_value())


def redis_bytes(url: str) -> list[bytes]:
    """Every key and value in the Redis at ``url`` (SCAN, DUMP, and GET of strings since
    DUMP may compress)."""
    sync = Redis.from_url(url)
    try:
        dumped: list[bytes] = []
        for key in sync.scan_iter(count=1000):
            dumped.append(key)
            for value in (sync.dump(key), sync.get(key) if sync.type(key) == b"string" else None):
                if isinstance(value, bytes):
                    dumped.append(value)
        return dumped
    finally:
        sync.close()
