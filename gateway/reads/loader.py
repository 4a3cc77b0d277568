"""The per-request profile loader: one E2 call per user and operation.

Resolvers ask the request's ``ProfileLoader`` for ``(UserRef, ProfileNeed)``. The loader
groups the keys of one tick by user, merges their needs into one (``ProfileNeed.merge``)
and reads the distinct users concurrently through the process-wide ``ProfileCache``
when the profile cache is on, else ``ProfileReads`` (the ``UcdClient``'s reads pool is
the concurrency bound).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiodataloader import DataLoader

from gateway.reads.cache import ProfileCache
from gateway.reads.inflight import ProfileReads
from gateway.reads.need import ProfileNeed
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.requests import UserRef

__all__ = ["ProfileKey", "ProfileLoader"]


ProfileKey = tuple[UserRef, ProfileNeed]
ProfileFetch = Callable[[UserRef, ProfileNeed], Awaitable[ProfileAnswer | None]]


@dataclass
class ProfileLoader:
    """Per-request loader of ``(UserRef, ProfileNeed)`` -> the UCD's profile answer or None.

    Built in ``build_context`` for every request (aiodataloader binds the running loop,
    and a shared cache would serve one caller's data to another). Keys of one tick are
    batched; keys naming the same user merge into one call.
    """

    reads: ProfileReads
    cache: ProfileCache | None = None
    #: The PII read names the caller may not see (gateway/auth/): the cache must not
    #: ask the UCD for them to learn aliases.
    withheld: frozenset[str] = frozenset()
    _loader: DataLoader[ProfileKey, ProfileAnswer | None] = field(init=False)

    def __post_init__(self) -> None:
        # Nothing the DataLoader holds may point back at this object. A bound method
        # (``self._batch``) made ProfileLoader <-> DataLoader a cycle, so every request's
        # loader, futures and keys were left to the cyclic collector: under overload that
        # was a full collection about 3 times a second, 15-50 ms each, with the loop
        # stopped (bench/README.md, "Overload"). Without the cycle, reference counting
        # frees them when the request ends.
        fetch: ProfileFetch = (
            self.reads.fetch
            if self.cache is None
            else partial(self.cache.fetch, withheld=self.withheld)
        )
        self._loader = DataLoader(partial(_batch, fetch), loop=asyncio.get_running_loop())

    async def load(self, ref: UserRef, need: ProfileNeed) -> ProfileAnswer | None:
        result: ProfileAnswer | None = await self._loader.load((ref, need))
        return result

    async def load_many(self, keys: Sequence[ProfileKey]) -> list[ProfileAnswer | None]:
        results: list[ProfileAnswer | None] = await self._loader.load_many(keys)
        return results

    def clear(self) -> None:
        """Forget cached answers: called after a mutation changed the UCD's data.

        Also ends the shared reads' generation, so no later read of any request joins a
        call that was sent before this change (``ProfileReads.invalidate``).
        """
        self._loader.clear_all()
        self.reads.invalidate()


async def _batch(fetch: ProfileFetch, keys: list[ProfileKey]) -> list[Any]:
    """One tick's keys -> their answers, one ``fetch`` per distinct user.

    list[ProfileAnswer | None | Exception]: aiodataloader rejects a key's future when its
    item is an exception, so one failed user does not fail the others' loads.
    """
    needs: dict[UserRef, ProfileNeed] = {}
    for ref, need in keys:
        needs[ref] = needs[ref].merge(need) if ref in needs else need
    if len(needs) == 1:
        # One user (the usual single-user request): no gather, no per-user tasks.
        ((ref, need),) = needs.items()
        try:
            answer: Any = await fetch(ref, need)
        except Exception as exc:  # handed to aiodataloader as every key's item
            answer = exc
        return [answer] * len(keys)
    refs = list(needs)
    answers = await asyncio.gather(
        *(fetch(ref, needs[ref]) for ref in refs), return_exceptions=True
    )
    by_ref = dict(zip(refs, answers, strict=True))
    return [by_ref[ref] for ref, _ in keys]
