"""Where APQ-registered documents are kept, behind one small interface.

``DocumentStore`` is all the rest of the gateway knows: ``get`` a document by its
SHA-256 hash (lower-case hex), ``put`` one under it. Both are coroutines so a shared
store (Redis, when the gateway runs as several processes) fits the same seam.
``MemoryDocumentStore`` keeps them in this process, bounded by their total characters:
APQ registration is open to any caller, so an unbounded store would be memory anyone
can fill. Each text is already within the document limits when it is put (see
``documents.py``); the bound caps how many of them are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

__all__ = ["DocumentStore", "MemoryDocumentStore"]


class DocumentStore(Protocol):
    """Documents by their SHA-256 hash."""

    async def get(self, sha256: str) -> str | None:
        """The document stored under ``sha256``, or None."""

    async def put(self, sha256: str, document: str) -> None:
        """Keep ``document`` under ``sha256`` (which the caller checked is its hash)."""


class MemoryDocumentStore:
    """An LRU of documents holding at most ``max_chars`` characters in all.

    >>> import asyncio
    >>> store = MemoryDocumentStore(max_chars=10)
    >>> asyncio.run(store.put("a", "123456")); asyncio.run(store.put("b", "7890"))
    >>> asyncio.run(store.put("c", "xy"))  # 12 characters: "a", the oldest, goes
    >>> asyncio.run(store.get("a")), asyncio.run(store.get("b")), store.chars
    (None, '7890', 6)
    """

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self._documents: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._documents)

    async def get(self, sha256: str) -> str | None:
        document = self._documents.get(sha256)
        if document is not None:
            self._documents.move_to_end(sha256)
        return document

    async def put(self, sha256: str, document: str) -> None:
        if len(document) > self.max_chars:
            return  # would evict everything and still not fit
        old = self._documents.pop(sha256, None)
        if old is not None:
            self.chars -= len(old)
        self._documents[sha256] = document
        self.chars += len(document)
        while self.chars > self.max_chars:
            _, evicted = self._documents.popitem(last=False)
            self.chars -= len(evicted)
