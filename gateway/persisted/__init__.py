"""Persisted documents: a GraphQL document named by a hash or an id instead of sent whole.

* ``store.py``: where documents registered by Apollo's APQ protocol are kept (one small
  ``DocumentStore`` interface; in memory, bounded, least recently used first out);
* ``shared.py``: with Redis, the same documents in the shared state, so a hash
  registered on one replica runs on every other;
* ``manifest.py``: the trusted documents of ``UCD_GATEWAY_TRUSTED_DOCUMENTS`` (Apollo's
  persisted-query manifest or GraphQL Codegen's client-preset map);
* ``documents.py``: ``PersistedDocuments``, which turns what a request names
  (``query``, ``extensions.persistedQuery``, ``documentId``) into the text to run, or
  into the refusal to answer instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.document_limits import DocumentLimits
from gateway.persisted.documents import PersistedDocuments
from gateway.persisted.manifest import load_manifest
from gateway.persisted.shared import SharedDocumentStore
from gateway.persisted.store import MemoryDocumentStore
from gateway.settings import Settings
from gateway.state.protocol import StateStore

__all__ = ["names_a_document", "persisted_documents", "share_documents"]


def persisted_documents(settings: Settings) -> PersistedDocuments:
    """The app's persisted documents: an in-memory store and the trusted manifest, if any
    (read now, so a broken manifest stops the start with ``ManifestError``)."""
    trusted = None
    if settings.trusted_documents is not None:
        trusted = load_manifest(settings.trusted_documents)
    return PersistedDocuments(
        MemoryDocumentStore(settings.persisted_store_chars),
        trusted,
        trusted_only=settings.trusted_documents_only,
        max_tokens=settings.max_tokens,
        # The limits every document meets when it runs (gateway/limits.py), so a text
        # registered by APQ is one that could run.
        limits=DocumentLimits(
            max_fields=settings.max_fields,
            max_query_depth=settings.max_query_depth,
            max_aliases=settings.max_aliases,
            max_directives=settings.max_directives,
        ),
    )


def share_documents(documents: PersistedDocuments, state: StateStore, settings: Settings) -> None:
    """With Redis (``UCD_GATEWAY_REDIS_URL``), keep registered documents in ``state`` too,
    so every replica finds them; called by the app's lifespan once the state is open."""
    local = documents.store
    if isinstance(local, SharedDocumentStore):  # the lifespan runs again (tests)
        local = local.local
    assert isinstance(local, MemoryDocumentStore), "built by persisted_documents"
    if settings.redis_url is None:
        documents.store = local
        return
    documents.store = SharedDocumentStore(state, local, ttl=settings.persisted_ttl)


def names_a_document(query_params: Mapping[str, object]) -> bool:
    """Whether a GET names its document by ``documentId`` or the APQ extension; such a
    request has no ``query`` parameter, like a browser's request for GraphiQL."""
    return "documentId" in query_params or "extensions" in query_params
