"""The local-only endpoints (§5) in the local UCD's OpenAPI document.

Segments and custom attribute declarations (authenticated, never rate limited), and the
unauthenticated health check, this document and export downloads.
"""

from __future__ import annotations

from gateway.local_ucd.attributes.writing import ATTRIBUTE_TYPES
from gateway.local_ucd.openapi.errors import go_error_schema
from gateway.local_ucd.openapi.operations import api_operation
from gateway.local_ucd.openapi.primitives import STRING, Schema, json_content, obj, ref

__all__ = ["local_paths"]


def local_paths() -> dict[str, Schema]:
    return {
        "/api/local/v1/segments": {
            "post": api_operation(
                "create_segment",
                "Create a dynamic segment for E3 (local only)",
                obj(
                    {
                        "name": {**STRING, "minLength": 1},
                        "conditions": {"type": "array", "items": ref("SegmentCondition")},
                    },
                    required=("name", "conditions"),
                ),
                obj(
                    {"segment_id": {"type": "integer", "minimum": 2}},
                    required=("segment_id",),
                    additionalProperties=False,
                ),
                limited=False,
                tag="local",
            ),
            "get": api_operation(
                "list_segments",
                "List the partner's segments, segment 1 (All users) first (local only)",
                None,
                obj(
                    {"segments": {"type": "array", "items": ref("Segment")}},
                    required=("segments",),
                    additionalProperties=False,
                ),
                limited=False,
                tag="local",
            ),
        },
        "/api/local/v1/attributes": {
            "post": api_operation(
                "declare_attribute",
                "Declare a custom attribute's type (local only)",
                obj(
                    {
                        "name": {**STRING, "minLength": 1, "maxLength": 128},
                        "type": {"enum": list(ATTRIBUTE_TYPES)},
                    },
                    required=("name", "type"),
                ),
                obj(
                    {"name": STRING, "type": {"enum": list(ATTRIBUTE_TYPES)}},
                    required=("name", "type"),
                    additionalProperties=False,
                ),
                limited=False,
                tag="local",
            ),
            "get": api_operation(
                "list_attributes",
                "List custom attributes and identifiers with their types (local only)",
                None,
                obj(
                    {
                        "attributes": {
                            "type": "array",
                            "items": obj(
                                {
                                    "name": STRING,
                                    "type": {"enum": [*ATTRIBUTE_TYPES, "identifier"]},
                                },
                                required=("name", "type"),
                                additionalProperties=False,
                            ),
                        }
                    },
                    required=("attributes",),
                    additionalProperties=False,
                ),
                limited=False,
                tag="local",
            ),
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness (local only)",
                "tags": ["local"],
                "security": [],
                "responses": {
                    "200": json_content(
                        obj(
                            {"status": {"const": "ok"}},
                            required=("status",),
                            additionalProperties=False,
                        ),
                        "The database is open and ready.",
                    )
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (local only)",
                "tags": ["local"],
                "security": [],
                "responses": {"200": json_content({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
        "/exports/{partner}/p/{file}": {
            "get": {
                "operationId": "download_export",
                "summary": "Download an export file by its capability URL (local only)",
                "tags": ["local"],
                "security": [],
                "parameters": [
                    {"name": "partner", "in": "path", "required": True, "schema": STRING},
                    {
                        "name": "file",
                        "in": "path",
                        "required": True,
                        "schema": STRING,
                        "description": "32 lower-case hex characters and .csv, .json or .parquet",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The file, until 24 hours after it became ready.",
                        "headers": {
                            "Content-Disposition": {
                                "required": True,
                                "schema": {"type": "string", "pattern": "^attachment; filename="},
                            }
                        },
                        "content": {
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "application/vnd.apache.parquet": {
                                "schema": {"type": "string", "contentEncoding": "binary"}
                            },
                        },
                    },
                    "404": json_content(
                        go_error_schema({"const": "export not found: no data"}),
                        "Unknown, expired or withdrawn file, or another partner's.",
                    ),
                },
            }
        },
    }
