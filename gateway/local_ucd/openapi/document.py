"""``GET /openapi.json`` (§5.3): an OpenAPI 3.1 description of every endpoint of §3 and §5.

The document is data, built once per base URL and cached. It documents every answer the
endpoints really send, so a schema-driven fuzzer (tests/local_ucd/test_schemathesis.py)
can check each response against it:

* every ``/api/…`` operation: 200, 400 (authentication §2.2, body checks §2.4, the
  endpoint's own validation), 403 and 500; 404 where a user is looked up; 429 where a rate
  limit or fault injection (§2.6, §5.7) can answer;
* error bodies are pinned to the contract's texts (``const``/``enum``/patterns), so an
  answer with a wrong text breaks the schema.

Default attributes and type-checked event parameters are generated from the tables the
endpoints themselves use, so the document cannot drift from them. Each request body carries
the contract's own example, which schema-driven tools send first.

This module assembles and serves the document; its parts live next to it in ``openapi/``:
``primitives`` (JSON Schema vocabulary), ``errors`` (error bodies and shared responses),
``schemas`` (component schemas), ``operations`` and ``examples`` (one ``/api/…`` operation
and its example body), ``paths`` (§3 endpoints) and ``local_paths`` (§5 endpoints).
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.local_ucd.http import dumps
from gateway.local_ucd.openapi.errors import shared_responses
from gateway.local_ucd.openapi.local_paths import local_paths
from gateway.local_ucd.openapi.paths import insider_paths
from gateway.local_ucd.openapi.schemas import component_schemas
from gateway.local_ucd.services import Services

__all__ = ["build_document", "handle_openapi"]


@functools.cache
def _document_bytes(base_url: str) -> bytes:
    return dumps(build_document(base_url))


def build_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a local UCD reachable at ``base_url``."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Local UCD",
            "version": "1.0.0",
            "description": (
                "A local stand-in for the User Data APIs of Insider's Unified Customer "
                "Database (UCD), plus local-only endpoints. Contract: ucd-rest-api.md."
            ),
        },
        "servers": [{"url": base_url}],
        "tags": [
            {"name": "insider", "description": "Endpoints of Insider's UCD (§3)."},
            {"name": "local", "description": "Local-only endpoints (§5)."},
        ],
        "paths": {**insider_paths(), **local_paths()},
        "components": {
            "schemas": component_schemas(),
            "responses": shared_responses(),
            "securitySchemes": {
                "PartnerName": {"type": "apiKey", "in": "header", "name": "X-PARTNER-NAME"},
                "RequestToken": {"type": "apiKey", "in": "header", "name": "X-REQUEST-TOKEN"},
            },
        },
    }


async def handle_openapi(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(_document_bytes(services.config.base_url), media_type="application/json")
