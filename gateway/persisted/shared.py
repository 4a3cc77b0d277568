"""APQ-registered documents shared by every replica through Redis (``UCD_GATEWAY_REDIS_URL``).

A document registered on replica A is found by its hash on replica B: ``put`` writes it
to the shared state (``Namespace.PERSISTED_DOCUMENTS``, kept ``UCD_GATEWAY_PERSISTED_TTL``
seconds after it was last registered) and to this process's LRU; ``get`` looks in the LRU
first (a hash names one text forever, so a local copy is never stale and a hot document
costs no Redis round trip), then in Redis, keeping what it finds locally.

Bounded: only texts within the document limits are put (``documents.py``), each one for
the TTL, and the local LRU by ``UCD_GATEWAY_PERSISTED_STORE_CHARS``.

When Redis cannot be reached, ``get`` answers from the LRU alone and ``put`` keeps the
text locally: a hash this process has not seen is then PERSISTED_QUERY_NOT_FOUND, on
which Apollo's link (and every APQ client) sends the request again with the whole query,
which runs and is registered locally. So the gateway keeps answering through an outage,
at the cost of one extra round trip per new hash, rather than failing every hash-only
request with STATE_UNAVAILABLE, which no APQ client recovers from by itself.
"""

from __future__ import annotations

import logging

from gateway.errors import StateUnavailable
from gateway.persisted.store import MemoryDocumentStore
from gateway.state.protocol import Namespace, StateStore

__all__ = ["SharedDocumentStore"]

logger = logging.getLogger("gateway.persisted")


class SharedDocumentStore:
    """A ``DocumentStore`` in the shared state, with ``local`` in front of it."""

    def __init__(self, state: StateStore, local: MemoryDocumentStore, *, ttl: float) -> None:
        self.state = state
        self.local = local
        self._ttl = ttl

    async def get(self, sha256: str) -> str | None:
        document = await self.local.get(sha256)
        if document is not None:
            return document
        try:
            value = await self.state.get(Namespace.PERSISTED_DOCUMENTS, sha256)
        except StateUnavailable:
            # The client resends the query on PERSISTED_QUERY_NOT_FOUND (module docstring).
            logger.warning("persisted documents: shared state unavailable; local ones only")
            return None
        if value is None:
            return None
        document = value.decode()
        await self.local.put(sha256, document)
        return document

    async def put(self, sha256: str, document: str) -> None:
        await self.local.put(sha256, document)
        try:
            await self.state.put(
                Namespace.PERSISTED_DOCUMENTS, sha256, document.encode(), ttl=self._ttl
            )
        except StateUnavailable:
            logger.warning("persisted documents: shared state unavailable; kept locally")
