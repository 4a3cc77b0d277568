"""Shared state in Redis or Valkey (``UCD_GATEWAY_REDIS_URL``): every replica sees it.

redis-py's asyncio client on one pool of at most ``UCD_GATEWAY_REDIS_MAX_CONNECTIONS``
connections per process (a caller waits for a free one no longer than the timeout).
Each connect and each command is bounded by ``UCD_GATEWAY_REDIS_TIMEOUT``, and every
operation as a whole by the same timeout or what is left of the GraphQL operation's
deadline, whichever ends first: an unreachable, stopped or paused Redis is
``StateUnavailable`` (``STATE_UNAVAILABLE``) by then, never a hang.

A command is retried once on a broken connection, without waiting: after Redis restarts,
the pooled connections are dead, and the first command on each must reconnect rather
than fail.

Keys are ``ucd-gateway:<namespace>:<key>``; values are the caller's bytes, set with a
millisecond TTL (``SET ... PX``), so Redis forgets them by itself.

``stamp`` and ``put_unless_stamped`` (the profile cache's key versioning) are Lua
scripts (``EVALSHA``, loaded on first use), so each is atomic: no replica sees a counter
raised without its marks, or writes between reading a mark and writing. All keys of a
script live on one node: a single Redis or Valkey (or a cluster with one hash slot for
these keys), and a ``maxmemory-policy`` that evicts no key with a TTL before it expires
(``noeviction`` or ``volatile-ttl``), since an evicted mark would let an older entry
count as current.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final, TypeVar, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.errors import StateUnavailable
from gateway.state.protocol import Namespace

__all__ = ["KEY_PREFIX", "RedisState"]

T = TypeVar("T")

#: KEYS: the counter, then the records to mark; ARGV: the TTL in ms, then per record its
#: fields, space-separated. The counter has no TTL; a record over 4,096 bytes or marked
#: ``*`` is replaced by one ``*`` mark (which outranks every other).
_STAMP: Final = """
local g = redis.call('INCR', KEYS[1])
for i = 2, #KEYS do
  local add = ''
  local whole = false
  for f in string.gmatch(ARGV[i], '%S+') do
    if f == '*' then whole = true end
    add = add .. f .. '=' .. g .. ';'
  end
  if whole or redis.call('STRLEN', KEYS[i]) + #add > 4096 then
    redis.call('SET', KEYS[i], '*=' .. g .. ';', 'PX', ARGV[1])
  else
    redis.call('APPEND', KEYS[i], add)
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
return g
"""

#: KEYS: ARGV[3] guards, then the records to write; ARGV: since, the TTL in ms, the number
#: of guards, then the values in the order of the records.
_PUT_UNLESS_STAMPED: Final = """
local since = tonumber(ARGV[1])
local guards = tonumber(ARGV[3])
for i = 1, guards do
  local marks = redis.call('GET', KEYS[i])
  if marks then
    for g in string.gmatch(marks, '=(%d+);') do
      if tonumber(g) > since then return 0 end
    end
  end
end
for i = guards + 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[3 + i - guards], 'PX', ARGV[2])
end
return 1
"""

KEY_PREFIX: Final = "ucd-gateway"


#: INCRBY, and PEXPIRE when the counter is new, in one step: two commands could leave a
#: counter without expiry if the connection dropped between them (a limit for ever).
_INCREMENT: Final = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
"""


def _no_deadline() -> float | None:
    return None


def _milliseconds(ttl: float) -> int:
    """A TTL for ``PX``/``PEXPIRE``: whole milliseconds, at least one."""
    return max(1, round(ttl * 1000))


class RedisState:
    """A ``StateStore`` in Redis; ``time_left`` gives the seconds left of the operation's
    deadline (None outside one), which bounds each call besides ``timeout``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_connections: int,
        time_left: Callable[[], float | None] = _no_deadline,
    ) -> None:
        self._timeout = timeout
        self._time_left = time_left
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,  # waiting for a free connection of the pool
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        # from_pool: the client owns the pool, so aclose() closes its connections too.
        self._client: Redis = Redis.from_pool(pool)
        self._stamp = self._client.register_script(_STAMP)
        self._put_unless_stamped = self._client.register_script(_PUT_UNLESS_STAMPED)
        # EVALSHA: the rate limits and the UCD quota run it per operation or lease.
        self._increment = self._client.register_script(_INCREMENT)

    def _key(self, namespace: Namespace, key: str) -> str:
        return f"{KEY_PREFIX}:{namespace.value}:{key}"

    async def _bounded(self, call: Awaitable[T]) -> T:
        limit = self._timeout
        left = self._time_left()
        if left is not None:
            limit = min(limit, max(left, 0.0))
        try:
            async with asyncio.timeout(limit):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            # The type only: a message may carry the URL, and the URL may carry a password.
            raise StateUnavailable(
                f"the gateway's shared state (Redis) cannot be reached: {type(exc).__name__}"
            ) from None

    async def get(self, namespace: Namespace, key: str) -> bytes | None:
        value = await self._bounded(self._client.get(self._key(namespace, key)))
        # decode_responses is off (the default): Redis answers bytes, never str.
        return cast("bytes | None", value)

    async def put(self, namespace: Namespace, key: str, value: bytes, *, ttl: float) -> None:
        await self._bounded(
            self._client.set(self._key(namespace, key), value, px=_milliseconds(ttl))
        )

    async def incr(self, namespace: Namespace, key: str, *, ttl: float) -> int:
        async def run() -> int:
            # MULTI/EXEC: the count and its expiry are set together, so a replica that
            # dies between the two cannot leave a counter that never expires.
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.pexpire(name, _milliseconds(ttl))
                count, _ = await pipe.execute()
            return int(count)

        name = self._key(namespace, key)
        return await self._bounded(run())

    async def put_if_absent(
        self, namespace: Namespace, key: str, value: bytes, *, ttl: float
    ) -> bool:
        written = await self._bounded(
            self._client.set(self._key(namespace, key), value, px=_milliseconds(ttl), nx=True)
        )
        return bool(written)

    async def get_many(self, namespace: Namespace, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self._bounded(self._client.mget([self._key(namespace, k) for k in keys]))
        return cast("list[bytes | None]", values)

    async def delete_many(self, namespace: Namespace, keys: Sequence[str]) -> None:
        if keys:
            await self._bounded(self._client.delete(*(self._key(namespace, k) for k in keys)))

    async def stamp(
        self, namespace: Namespace, counter: str, marks: Mapping[str, Sequence[str]], *, ttl: float
    ) -> int:
        keys = [self._key(namespace, counter), *(self._key(namespace, k) for k in marks)]
        args: list[str | int] = [_milliseconds(ttl), *(" ".join(f) for f in marks.values())]
        stamp = await self._bounded(self._stamp(keys=keys, args=args))
        return int(cast("int", stamp))

    async def put_unless_stamped(
        self,
        namespace: Namespace,
        items: Mapping[str, bytes],
        *,
        guards: Sequence[str],
        since: int,
        ttl: float,
    ) -> bool:
        keys = [self._key(namespace, k) for k in (*guards, *items)]
        args: list[bytes | int] = [since, _milliseconds(ttl), len(guards), *items.values()]
        written = await self._bounded(self._put_unless_stamped(keys=keys, args=args))
        return bool(written)

    # --- counters (rate limits) ---------------------------------------------------

    async def increment(self, namespace: Namespace, key: str, amount: int, *, ttl: float) -> int:
        keys = [self._key(namespace, key)]
        value = await self._bounded(self._increment(keys=keys, args=[amount, _milliseconds(ttl)]))
        return int(value)

    async def aclose(self) -> None:
        await self._client.aclose()
