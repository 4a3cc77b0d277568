"""The JSON Schema vocabulary of the local UCD's OpenAPI document (§5.3).

Small constructors (``obj``, ``ref``, ``json_content``) and the primitive value schemas
(§4.7.1 types) that the component schemas, error bodies and operations are built from.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ANY",
    "DATE",
    "JSON_MEDIA_TYPE",
    "NUMBERS",
    "STRING",
    "STRINGS",
    "VALUE_TYPES",
    "Schema",
    "json_content",
    "obj",
    "ref",
    "response_ref",
]

Schema = dict[str, Any]

JSON_MEDIA_TYPE = "application/json"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def response_ref(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def obj(properties: dict[str, Schema], *, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def json_content(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON_MEDIA_TYPE: {"schema": schema}}}


ANY: Schema = {}
STRING: Schema = {"type": "string"}
STRINGS: Schema = {"type": "array", "items": STRING}
NUMBERS: Schema = {"type": "array", "items": {"type": "number"}}
#: §4.7.1 "date": an RFC 3339 date-time ending in Z.
DATE: Schema = {"type": "string", "format": "date-time", "pattern": "Z$"}

VALUE_TYPES: dict[str, Schema] = {
    "string": STRING,
    "number": {"type": "number"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "date": DATE,
    "string_array": STRINGS,
    "number_array": NUMBERS,
}
