"""The per-request profile loader: one E2 call per user and operation.

Resolvers ask the request's ``ProfileLoader`` for ``(UserRef, ProfileNeed)``. The loader
groups the keys of one tick by user, merges their needs into one (``ProfileNeed.merge``)
and reads the distinct users concurrently through the process-wide ``ProfileCache``
when the profile cache is on, else ``ProfileReads`` (the ``UcdClient``'s reads pool is
the concurrency bound).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiodataloader import DataLoader

from gateway.reads.cache import ProfileCache
from gateway.reads.inflight import ProfileReads
from gateway.reads.need import ProfileNeed
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.requests import UserRef

__all__ = ["ProfileKey", "ProfileLoader"]


ProfileKey = tuple[UserRef, ProfileNeed]


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
        self._loader = DataLoader(self._batch, loop=asyncio.get_running_loop())
        self._fetch = self.reads.fetch if self.cache is None else self._cached

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

    async def _cached(self, ref: UserRef, need: ProfileNeed) -> ProfileAnswer | None:
        assert self.cache is not None
        return await self.cache.fetch(ref, need, withheld=self.withheld)

    async def _batch(self, keys: list[ProfileKey]) -> list[Any]:
        # list[ProfileAnswer | None | Exception]: aiodataloader rejects a key's future when its
        # item is an exception, so one failed user does not fail the others' loads.
        needs: dict[UserRef, ProfileNeed] = {}
        for ref, need in keys:
            needs[ref] = needs[ref].merge(need) if ref in needs else need
        if len(needs) == 1:
            # One user (the usual single-user request): no gather, no per-user tasks.
            ((ref, need),) = needs.items()
            try:
                answer: Any = await self._fetch(ref, need)
            except Exception as exc:  # handed to aiodataloader as every key's item
                answer = exc
            return [answer] * len(keys)
        refs = list(needs)
        answers = await asyncio.gather(
            *(self._fetch(ref, needs[ref]) for ref in refs), return_exceptions=True
        )
        by_ref = dict(zip(refs, answers, strict=True))
        return [by_ref[ref] for ref, _ in keys]
