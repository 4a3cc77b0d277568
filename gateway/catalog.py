"""The partner's catalogue (E10's attribute columns and events), cached for a short time.

Catalogues change rarely and only grow (§3.9), and GraphiQL's example asks for one on
every first visit, so the gateway keeps each answer for ``UCD_GATEWAY_CATALOG_TTL``
seconds (0: never kept). Kept per partner and table (``contacts``, ``events``), so a query
that selects only ``attributes`` makes only that call. One fetch per key at a time: the
requests that miss together wait for the same call (a cold cache under load is one call,
not one per request). A failed fetch is not kept; the next request asks again.

In this process only, for now: each gateway process asks the UCD at most once per TTL
per partner and table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.ucd.answers import MetadataColumn
from gateway.ucd.client import MetadataTable, UcdClient

__all__ = ["CatalogCache"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class _Entry:
    columns: tuple[MetadataColumn, ...]
    expires: float


class CatalogCache:
    """E10 answers by (partner, table), each kept ``ttl`` seconds from when it arrived."""

    def __init__(self, ttl: float, *, clock: Clock = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, MetadataTable], _Entry] = {}
        self._fetching: dict[
            tuple[str, MetadataTable], asyncio.Future[tuple[MetadataColumn, ...]]
        ] = {}

    async def columns(self, ucd: UcdClient, table: MetadataTable) -> Sequence[MetadataColumn]:
        """The table's columns for ``ucd``'s partner: kept ones while fresh, else one call
        (shared with every request that asks while it is on the wire)."""
        key = (ucd.partner, table)
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.expires:
            return entry.columns
        shared = self._fetching.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._fetch(ucd, key))
            self._fetching[key] = shared
            shared.add_done_callback(lambda _: self._fetching.pop(key, None))
        # shield: one caller's cancellation (its operation's deadline) must not cancel
        # the call the others wait for.
        return await asyncio.shield(shared)

    async def _fetch(
        self, ucd: UcdClient, key: tuple[str, MetadataTable]
    ) -> tuple[MetadataColumn, ...]:
        columns = tuple(await ucd.metadata_columns(key[1]))
        if self._ttl > 0:
            self._entries[key] = _Entry(columns, self._clock() + self._ttl)
        return columns
