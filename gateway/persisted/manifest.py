"""The trusted documents of ``UCD_GATEWAY_TRUSTED_DOCUMENTS``, read once at start-up.

Two formats are accepted, the ones client build tools write:

* Apollo's persisted-query manifest (``npx generate-persisted-query-manifest``)::

    {"format": "apollo-persisted-query-manifest", "version": 1,
     "operations": [{"id": "<sha256>", "body": "query A { ... }", "name": "A",
                     "type": "query"}]}

* GraphQL Codegen's client preset (``persistedDocuments: true``), a map from hash to
  document::

    {"<sha256>": "query A { ... }"}

Each document is found by its id as the manifest gives it and by the SHA-256 of its
text, so a client may name it by either (``documentId: "sha256:<hex>"`` or
``extensions.persistedQuery.sha256Hash``, or the manifest's own id). Every body must
parse: a broken manifest stops the start, naming the entry, rather than failing
requests later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson
from graphql import GraphQLSyntaxError, parse

__all__ = ["ManifestError", "TrustedDocuments", "load_manifest", "parse_manifest", "sha256_hex"]

APOLLO_FORMAT: Final = "apollo-persisted-query-manifest"
#: The key of Apollo's manifest that names its format (a UCD body uses the same word,
#: hence a name of its own: tests/test_architecture.py keeps wire keys in gateway/ucd/).
_FORMAT_KEY: Final = "format"

#: How a GraphQL-over-HTTP ``documentId`` names a document by its hash.
SHA256_PREFIX: Final = "sha256:"


class ManifestError(ValueError):
    """The trusted-documents manifest cannot be read; the message names the file and entry."""


def sha256_hex(text: str) -> str:
    """The hash APQ and ``sha256:`` document ids use: lower-case hex of the UTF-8 bytes.

    >>> sha256_hex("{ __typename }")[:16]
    '7f56e67dd21ab3f3'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TrustedDocuments:
    """The manifest's documents, by id and by SHA-256."""

    by_id: Mapping[str, str]
    by_sha256: Mapping[str, str]

    def __len__(self) -> int:
        return len(self.by_id)

    def find(self, document_id: str) -> str | None:
        """The document a ``documentId`` names: the manifest's id, or ``sha256:<hex>``."""
        found = self.by_id.get(document_id)
        if found is None and document_id.startswith(SHA256_PREFIX):
            found = self.by_sha256.get(document_id.removeprefix(SHA256_PREFIX).lower())
        return found


def load_manifest(path: Path) -> TrustedDocuments:
    """The trusted documents in the file at ``path``."""
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ManifestError(f"cannot read the trusted documents {path}: {exc.strerror}") from exc
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"the trusted documents {path} are not JSON: {exc}") from exc
    return parse_manifest(data, source=str(path))


def parse_manifest(data: object, *, source: str) -> TrustedDocuments:
    """The trusted documents in a decoded manifest of either format."""
    if isinstance(data, dict) and data.get(_FORMAT_KEY) == APOLLO_FORMAT:
        entries = _apollo_entries(data, source)
    elif isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        entries = [(str(key), value) for key, value in data.items()]
    else:
        raise ManifestError(
            f"{source} is neither an Apollo persisted-query manifest "
            f'({{"format": "{APOLLO_FORMAT}", "version": 1, "operations": [...]}}) '
            "nor a GraphQL Codegen map of hashes to documents"
        )
    by_id: dict[str, str] = {}
    by_sha256: dict[str, str] = {}
    for document_id, body in entries:
        try:
            parse(body)
        except GraphQLSyntaxError as exc:
            raise ManifestError(
                f"{source}: the document {document_id!r} is not GraphQL: {exc.message}"
            ) from exc
        by_id[document_id] = body
        by_sha256[sha256_hex(body)] = body
    return TrustedDocuments(by_id, by_sha256)


def _apollo_entries(data: Mapping[str, object], source: str) -> list[tuple[str, str]]:
    if data.get("version") != 1:
        raise ManifestError(f"{source}: only version 1 of {APOLLO_FORMAT} is known")
    operations = data.get("operations")
    if not isinstance(operations, list):
        raise ManifestError(f"{source}: `operations` must be a list")
    entries = []
    for index, operation in enumerate(operations):
        if not (
            isinstance(operation, dict)
            and isinstance(operation.get("id"), str)
            and isinstance(operation.get("body"), str)
        ):
            raise ManifestError(f"{source}: operations[{index}] needs a string `id` and `body`")
        entries.append((operation["id"], operation["body"]))
    return entries
