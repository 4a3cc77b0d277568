"""What document a request runs, when it names one instead of (or besides) sending it.

A GraphQL request may carry its document three ways, and ``PersistedDocuments.resolve``
turns each into the text to run or the one error to answer instead (codes from
gateway/error_pipeline.py):

1. ``documentId`` (the GraphQL-over-HTTP persisted-documents convention, e.g.
   ``"sha256:<hex>"`` or a manifest's own id): a trusted document, or, unless the
   gateway is trusted-only, one registered by APQ; unknown: PERSISTED_QUERY_NOT_FOUND.
2. ``extensions.persistedQuery.sha256Hash`` (Apollo's APQ):
   - without ``query``: the trusted or registered document with that hash, or
     PERSISTED_QUERY_NOT_FOUND (message ``PersistedQueryNotFound``), on which Apollo's
     link sends the request again with the query;
   - with ``query``: the hash must be the query's (else PERSISTED_QUERY_HASH_MISMATCH);
     the query is registered under it, if it is within the document limits, and run.
3. ``query`` alone: run as it is.

With ``UCD_GATEWAY_TRUSTED_DOCUMENTS_ONLY`` nothing is registered and only manifest
documents run (a query sent whole runs when it is one of them, byte for byte); anything
else is TRUSTED_DOCUMENT_REQUIRED, before parsing and before any UCD call.

Registration respects the limits every document meets (gateway/document_text.py, then
gateway/document_limits.py): a text refused by them is not stored (and is refused
again when it runs), so APQ cannot park huge documents in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from gateway.document_limits import DocumentLimits
from gateway.document_text import parse_text
from gateway.error_pipeline import (
    persisted_hash_mismatch,
    persisted_query_not_found,
    trusted_document_required,
)
from gateway.persisted.manifest import SHA256_PREFIX, TrustedDocuments, sha256_hex
from gateway.persisted.store import DocumentStore

__all__ = ["PERSISTED_QUERY", "PersistedDocuments", "Resolved"]

#: The key of Apollo's APQ extension in a request's ``extensions``.
PERSISTED_QUERY = "persistedQuery"


@dataclass(frozen=True)
class Resolved:
    """The document a request runs (``text``; None: it sent none) or its ``refusal``.

    ``persisted``: the request named the document without sending it (a hash or an id),
    so a GET of it is the same URL every time and may be cached.
    """

    text: str | None = None
    refusal: GraphQLError | None = None
    persisted: bool = False


class PersistedDocuments:
    """Registered (APQ) and trusted (manifest) documents, and the rules above."""

    def __init__(
        self,
        store: DocumentStore,
        trusted: TrustedDocuments | None,
        *,
        trusted_only: bool,
        max_tokens: int,
        limits: DocumentLimits,
    ) -> None:
        self.store = store
        self.trusted = trusted
        self.trusted_only = trusted_only
        self._max_tokens = max_tokens
        self._limits = limits

    async def resolve(
        self, query: str | None, extensions: Mapping[str, Any] | None, document_id: str | None
    ) -> Resolved:
        """The document of one operation (its fields as ``request_bodies`` checked them)."""
        if document_id is not None:
            return await self._by_id(document_id)
        persisted = (extensions or {}).get(PERSISTED_QUERY)
        if persisted is not None:
            sha256 = str(persisted["sha256Hash"]).lower()
            if query is None:
                return await self._by_hash(sha256)
            if sha256_hex(query) != sha256:
                return Resolved(refusal=persisted_hash_mismatch())
            if self._trusted_hash(sha256) is None:
                if self.trusted_only:
                    return Resolved(refusal=trusted_document_required())
                await self._register(sha256, query)
            return Resolved(text=query)
        if (
            query is not None
            and self.trusted_only
            and self._trusted_hash(sha256_hex(query)) is None
        ):
            return Resolved(refusal=trusted_document_required())
        return Resolved(text=query)

    async def _by_id(self, document_id: str) -> Resolved:
        text = self.trusted.find(document_id) if self.trusted is not None else None
        if text is None and not self.trusted_only and document_id.startswith(SHA256_PREFIX):
            text = await self.store.get(document_id.removeprefix(SHA256_PREFIX).lower())
        if text is None:
            return Resolved(refusal=persisted_query_not_found())
        return Resolved(text=text, persisted=True)

    async def _by_hash(self, sha256: str) -> Resolved:
        text = self._trusted_hash(sha256)
        if text is None and not self.trusted_only:
            text = await self.store.get(sha256)
        if text is None:
            return Resolved(refusal=persisted_query_not_found())
        return Resolved(text=text, persisted=True)

    def _trusted_hash(self, sha256: str) -> str | None:
        return self.trusted.by_sha256.get(sha256) if self.trusted is not None else None

    async def _register(self, sha256: str, text: str) -> None:
        if self.admits(text):
            await self.store.put(sha256, text)

    def admits(self, text: str) -> bool:
        """Whether ``text`` is within the document limits (tokens and length before
        parsing, then fields, depth, aliases and directives); not whether it is valid."""
        try:
            # Through the parser cache: the request that registers the text runs it next.
            document = parse_text(text, max_tokens=self._max_tokens)
        except GraphQLSyntaxError:
            return False
        refusal: GraphQLError | None = self._limits.check(document)
        return refusal is None
