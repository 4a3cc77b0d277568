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
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.local_ucd.attribute_names import DEFAULT_ATTRIBUTES
from gateway.local_ucd.events import PARAM_TYPES
from gateway.local_ucd.http import (
    ACCESS_DENIED,
    INVALID_JSON,
    NO_SUCH_USER,
    TOO_MANY_REQUESTS,
    UNKNOWN_ERROR,
    dumps,
)
from gateway.local_ucd.services import Services

__all__ = ["build_document", "handle_openapi"]

Schema = dict[str, Any]

_JSON = "application/json"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _response_ref(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _obj(properties: dict[str, Schema], *, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


_ANY: Schema = {}
_STRING: Schema = {"type": "string"}
_STRINGS: Schema = {"type": "array", "items": _STRING}
_NUMBERS: Schema = {"type": "array", "items": {"type": "number"}}
#: §4.7.1 "date": an RFC 3339 date-time ending in Z.
_DATE: Schema = {"type": "string", "format": "date-time", "pattern": "Z$"}

_VALUE_TYPES: dict[str, Schema] = {
    "string": _STRING,
    "number": {"type": "number"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "date": _DATE,
    "string_array": _STRINGS,
    "number_array": _NUMBERS,
}

#: Custom attribute types of §4.7.2 / §5.6.
_ATTRIBUTE_TYPES = ["string", "number", "boolean", "date", "string_array", "number_array"]
#: Segment condition operators of §5.5.
_OPERATORS = ["eq", "neq", "gt", "gte", "lt", "lte", "exists", "contains"]


# --- error bodies (§2.2, §2.4, §2.5) -----------------------------------------------------

_CONTENT_TYPE_TEXT = "content type must be application/json"
_TOO_BIG_TEXT = "request body is bigger than maximum allowed size 5,000,000 bytes"
_AUTH_400_TEXTS = ["Empty Partner", "Empty Token", "Partner is invalid."]


def _go_error(text_schema: Schema) -> Schema:
    return _obj({"error": text_schema}, required=("error",), additionalProperties=False)


def _message_error(text_schema: Schema) -> Schema:
    return _obj(
        {"success": {"const": False}, "message": text_schema},
        required=("success", "message"),
        additionalProperties=False,
    )


def _error_schemas() -> dict[str, Schema]:
    return {
        "GoError": {
            **_go_error(_STRING),
            "description": 'Go-style error envelope {"error": text} (§2.5).',
        },
        "MessageError": {
            **_message_error(_STRING),
            "description": 'Success/message envelope {"success": false, "message": text} (§2.5).',
        },
        "BadRequest": {
            "description": (
                "Authentication failures (§2.2), body checks (§2.4) and the endpoint's "
                "request-level validation (Go style, ending in ': bad request')."
            ),
            "anyOf": [
                _message_error({"enum": [*_AUTH_400_TEXTS, INVALID_JSON["message"]]}),
                _go_error({"enum": [_CONTENT_TYPE_TEXT, _TOO_BIG_TEXT]}),
                _go_error({"type": "string", "pattern": ": bad request$"}),
            ],
        },
    }


def _responses() -> dict[str, Schema]:
    retry_after = {
        "description": "Whole seconds until the request would be admitted (at least 1).",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
    return {
        "BadRequest": _json(_ref("BadRequest"), "Invalid headers, body or request."),
        "Forbidden": _json(
            _message_error({"const": ACCESS_DENIED["message"]}),
            "Unknown partner, or a token that is not one of the partner's tokens.",
        ),
        "UserNotFound": _json(
            _go_error({"const": NO_SUCH_USER["error"]}), "No user for these identifiers."
        ),
        "TooManyRequests": {
            **_json(
                _go_error({"const": TOO_MANY_REQUESTS["error"]}),
                "Rate limited (§2.6, strict mode) or an injected fault (§5.7).",
            ),
            "headers": {"Retry-After": retry_after},
        },
        "ServerError": _json(
            _message_error({"const": UNKNOWN_ERROR["message"]}),
            "Unexpected failure; the request's transaction was rolled back.",
        ),
    }


# --- request and answer shapes -------------------------------------------------------------


def _identifier_schemas() -> dict[str, Schema]:
    custom = {
        "type": "object",
        "description": "Custom identifiers: name -> string value.",
        "propertyNames": {"minLength": 1, "maxLength": 128},
        "additionalProperties": _STRING,
    }
    return {
        "Identifiers": _obj(
            {
                "email": {**_STRING, "description": "Trimmed and lower-cased (§4.2)."},
                "phone_number": {**_STRING, "description": "E.164, e.g. +905551112233."},
                "uuid": _STRING,
                "custom": custom,
            },
            additionalProperties=False,
            description="A user's identifiers (§4.2).",
        ),
        "OneIdentifier": {
            **_obj(
                {
                    "email": _STRING,
                    "phone_number": _STRING,
                    "uuid": _STRING,
                    "custom": {**custom, "minProperties": 1, "maxProperties": 1},
                },
                additionalProperties=False,
                minProperties=1,
                maxProperties=1,
            ),
            "description": "Exactly one identifier entry (§3.5.1).",
        },
    }


def _attributes_schema() -> Schema:
    properties: dict[str, Schema] = {}
    for attribute in DEFAULT_ATTRIBUTES:
        value = _VALUE_TYPES[attribute.type]
        for name in (attribute.write_name, *attribute.aliases):
            properties[name] = {**value, "description": attribute.display_name}
    properties["custom"] = {
        "type": "object",
        "description": "Custom attributes by name, without the c_ prefix (§4.7.2).",
        "propertyNames": {"minLength": 1, "maxLength": 128},
        "additionalProperties": {
            "anyOf": [
                _STRING,
                {"type": "number"},
                {"type": "boolean"},
                _STRINGS,
                _NUMBERS,
            ]
        },
    }
    return {
        **_obj(properties, minProperties=1),
        "description": "Default attributes by write name or alias (§4.7.1); others are ignored.",
    }


def _event_schema() -> Schema:
    params: dict[str, Schema] = {name: _VALUE_TYPES[t] for name, t in PARAM_TYPES.items()}
    params["custom"] = {"type": "object", "description": "Custom parameters (any JSON value)."}
    return _obj(
        {
            "event_name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"},
            "timestamp": {"type": "string", "format": "date-time"},
            "event_params": {
                **_obj(params),
                "description": "Default parameters at the root, custom ones under custom (§4.8.2).",
            },
            "custom": {"type": "object", "description": "Merged into the custom parameters."},
        },
        required=("event_name", "timestamp"),
    )


def _user_schema() -> Schema:
    return {
        **_obj(
            {
                "identifiers": _ref("Identifiers"),
                "insider_id": {"type": "string", "minLength": 1},
                "attributes": _ref("Attributes"),
                "events": {"type": "array", "items": _ref("Event")},
                "append": {"type": "boolean"},
                "not_append": {"type": "boolean"},
                "object_attributes": {**_ANY, "description": "Accepted and ignored."},
            },
        ),
        "description": (
            "identifiers or insider_id, and attributes or events. A user failing §3.1.3 is "
            "reported in the 200 data envelope, not with a 400."
        ),
    }


def _users(items: Schema) -> Schema:
    return {"type": "array", "maxItems": 1000, "items": items}


def _events_request() -> Schema:
    filter_ = _obj(
        {
            "key": _STRING,
            "operator": {"const": "eq"},
            "values": {"type": "array", "minItems": 1},
        },
        required=("key", "operator", "values"),
    )
    wanted = _obj(
        {
            "event_name": _STRING,
            "params": {**_STRINGS, "description": "Custom parameters as c_<name>."},
            "filters": {"type": "array", "items": filter_},
            "limit_per_source": {"type": "integer", "minimum": 1},
        },
        required=("event_name", "params"),
    )
    return _obj(
        {
            "start_date": {"type": "integer", "description": "Epoch seconds, inclusive."},
            "end_date": {"type": "integer", "description": "Epoch seconds, inclusive."},
            "wanted": {"type": "array", "items": wanted},
        },
        required=("start_date", "end_date", "wanted"),
    )


_ATTRIBUTE_NAMES: Schema = {
    "description": 'Read names (custom ones as c_<name>), or "*" / ["*"] for all.',
    "anyOf": [{"const": "*"}, _STRINGS],
}


def _data_envelope() -> Schema:
    empty = {"type": "object", "maxProperties": 0}
    count = {"type": "integer", "minimum": 1}
    successful = {
        "anyOf": [empty, _obj({"count": count}, required=("count",), additionalProperties=False)]
    }
    errors = {
        "type": "object",
        "additionalProperties": {"type": "array", "items": _STRING, "minItems": 1},
        "description": "users.N.<path>.<rule> -> messages.",
    }
    fail = {
        "anyOf": [
            empty,
            _obj(
                {"count": count, "errors": errors},
                required=("count", "errors"),
                additionalProperties=False,
            ),
        ]
    }
    data = _obj(
        {"successful": successful, "fail": fail},
        required=("successful", "fail"),
        additionalProperties=False,
    )
    return {
        **_obj({"data": data}, required=("data",), additionalProperties=False),
        "description": "Per-user outcome of E1 and E4 (§3.1.5).",
    }


def _profile_answer() -> Schema:
    event = _obj(
        {"created_date": _DATE, "source": _STRING},
        required=("created_date", "source"),
        description="Requested parameters; custom ones as c_<name>.",
    )
    return _obj(
        {
            "attributes": _obj(
                {"iid": _STRING},
                required=("iid",),
                description="Requested attributes by read name; custom ones as c_<name>.",
            ),
            "events": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": event},
                "description": "One list per wanted event name, newest first.",
            },
            "quota": _obj(
                {
                    "cost": {"type": "number"},
                    "used": {"type": "number"},
                    "total": {"const": 1000},
                },
                required=("cost", "used", "total"),
                additionalProperties=False,
            ),
        },
        required=("attributes", "events"),
        additionalProperties=False,
    )


def _metadata_answer() -> Schema:
    contact = _obj(
        {
            "key": _STRING,
            "display_name": _STRING,
            # Default attributes report their §4.7.1 type (static_segment_id:
            # number_array); custom array attributes report "array" (§3.9).
            "type": {"enum": ["string", "number", "boolean", "date", "array", "number_array"]},
        },
        required=("key", "display_name", "type"),
        additionalProperties=False,
    )
    param = _obj(
        {"key": _STRING, "display_name": _STRING},
        required=("key", "display_name"),
        additionalProperties=False,
    )
    event = _obj(
        {"key": _STRING, "display_name": _STRING, "params": {"type": "array", "items": param}},
        required=("key", "display_name", "params"),
        additionalProperties=False,
    )
    return {"type": "array", "items": {"anyOf": [contact, event]}}


def _segment_schemas() -> dict[str, Schema]:
    condition = _obj(
        {
            "attribute": {**_STRING, "description": "A read name of §4.7.1, iid or c_<name>."},
            "operator": {"enum": _OPERATORS},
            "value": {**_ANY, "description": "Required except for exists (boolean, default true)."},
        },
        required=("attribute", "operator"),
    )
    segment = _obj(
        {
            "segment_id": {"type": "integer", "minimum": 1},
            "name": _STRING,
            "conditions": {"type": "array", "items": condition},
        },
        required=("segment_id", "name", "conditions"),
    )
    return {"SegmentCondition": condition, "Segment": segment}


def _schemas() -> dict[str, Schema]:
    return {
        **_error_schemas(),
        **_identifier_schemas(),
        "Attributes": _attributes_schema(),
        "Event": _event_schema(),
        "User": _user_schema(),
        "EventsRequest": _events_request(),
        "DataEnvelope": _data_envelope(),
        "Empty": {"type": "object", "maxProperties": 0, "description": "The empty object {}."},
        **_segment_schemas(),
    }


# --- operations --------------------------------------------------------------------------

_SECURED: list[dict[str, list[str]]] = [{"PartnerName": [], "RequestToken": []}]


_ADA_IID = "3b9a6c1e-8f3d-4c1a-9e57-2d8f0b6a4c11"
_WINDOW = {"start_date": 1735689600, "end_date": 1738367999}

#: The contract's own request examples (§3, §5), by operation id. Schema-driven tools send
#: them first, in document order: the upsert creates the user the later examples read.
_EXAMPLES: dict[str, Any] = {
    "upsert": {
        "skip_hook": False,
        "users": [
            {
                "identifiers": {"email": "ada@example.com", "custom": {"crm_id": "c-9"}},
                "attributes": {
                    "name": "Ada",
                    "age": 36,
                    "email_optin": True,
                    "birthday": "1989-12-10T00:00:00Z",
                    "static_segment_id": [1, 2],
                    "custom": {"tier": "gold", "favorite_color": ["green"]},
                },
                "events": [
                    {
                        "event_name": "purchase",
                        "timestamp": "2025-01-10T21:35:20Z",
                        "event_params": {
                            "product_id": "ABC21000",
                            "name": "Phone",
                            "currency": "USD",
                            "unit_price": 990.9,
                            "unit_sale_price": 890.9,
                            "quantity": 1,
                            "event_group_id": "ORDER123",
                            "taxonomy": ["Electronic", "Phone"],
                            "custom": {"gift_wrap": True},
                        },
                    }
                ],
            },
            {"insider_id": _ADA_IID, "not_append": True, "attributes": {"static_segment_id": [7]}},
        ],
    },
    "profile": {
        "identifiers": {"email": "ada@example.com"},
        "attributes": ["email", "name", "gdpr", "c_tier"],
        "events": {
            **_WINDOW,
            "wanted": [
                {
                    "event_name": "purchase",
                    "params": ["product_id", "unit_sale_price", "c_gift_wrap", "timestamp"],
                },
                {"event_name": "email_click", "params": ["campaign_id"]},
            ],
        },
        "quota": True,
    },
    "export": {
        "segment": {"segment_id": 1},
        "attributes": ["email", "name", "c_tier"],
        "events": {
            **_WINDOW,
            "wanted": [{"event_name": "purchase", "params": ["product_id", "quantity"]}],
        },
        "format": "csv",
        "hook": "http://127.0.0.1:9000/export-ready",
    },
    "attribute_delete": {
        "users": [
            {
                "identifiers": {"email": "ada@example.com"},
                "whole": ["name", "email_optin"],
                "partial": {"list_id": [1, 2]},
                "custom": {"whole": ["tier"], "partial": {"favorite_color": ["green"]}},
            }
        ]
    },
    "identity_update": {
        "old_identifier": {"custom": {"crm_id": "c-9"}},
        "new_identifier": {"custom": {"crm_id": "c-10"}},
    },
    "identity_delete": {"identifiers": {"phone_number": "+905551112233"}},
    "anonymize_contact": {"insider_id": _ADA_IID},
    "anonymize_user": {"identifiers": {"email": "ada@example.com"}},
    "delete_user": {"identifiers": {"custom": {"crm_id": "c-10"}}},
    "metadata_columns": {"table": "contacts"},
    "create_segment": {
        "name": "Gold buyers in Izmir",
        "conditions": [
            {"attribute": "c_tier", "operator": "eq", "value": "gold"},
            {"attribute": "city", "operator": "eq", "value": "Izmir"},
        ],
    },
    "declare_attribute": {"name": "renewal_date", "type": "date"},
}


def _operation(
    operation_id: str,
    summary: str,
    request: Schema | None,
    answer: Schema,
    *,
    not_found: bool = False,
    limited: bool = True,
    tag: str = "insider",
    body_optional_type: bool = False,
) -> Schema:
    """An authenticated ``/api/…`` operation with the common answers of §2.

    ``limited``: the endpoint can answer 429 (rate pool or fault injection; §3 endpoints).
    """
    responses: dict[str, Schema] = {
        "200": _json(answer, "Success."),
        "400": _response_ref("BadRequest"),
        "403": _response_ref("Forbidden"),
    }
    if not_found:
        responses["404"] = _response_ref("UserNotFound")
    if limited:
        responses["429"] = _response_ref("TooManyRequests")
    responses["500"] = _response_ref("ServerError")
    operation: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": _SECURED,
        "responses": responses,
    }
    if request is not None:
        media: Schema = {"schema": request}
        if operation_id in _EXAMPLES:
            media["example"] = _EXAMPLES[operation_id]
        body: Schema = {"required": True, "content": {_JSON: media}}
        if body_optional_type:
            body["description"] = "Content-Type may be omitted on this endpoint (§2.4)."
        operation["requestBody"] = body
    return operation


def _paths() -> dict[str, Schema]:
    identity_lookup = _obj(
        {
            "identifiers": _ref("Identifiers"),
            "insider_id": {**_STRING, "description": "Wins over identifiers."},
        }
    )
    return {
        "/api/user/v1/upsert": {
            "post": _operation(
                "upsert",
                "E1: create or update users (attributes, identifiers, events)",
                _obj(
                    {
                        "users": _users(_ref("User")),
                        "skip_hook": {"type": "boolean"},
                        "error_callback_endpoint": {"type": "string", "format": "uri"},
                        "append": {"type": "boolean"},
                        "not_append": {"type": "boolean"},
                    },
                    required=("users",),
                ),
                _ref("DataEnvelope"),
            )
        },
        "/api/user/v1/profile": {
            "post": _operation(
                "profile",
                "E2: read one user's attributes and events",
                _obj(
                    {
                        "identifiers": _ref("Identifiers"),
                        "insider_id": _STRING,
                        "attributes": _ATTRIBUTE_NAMES,
                        "events": _ref("EventsRequest"),
                        "quota": {"type": "boolean"},
                    }
                ),
                _profile_answer(),
                not_found=True,
            )
        },
        "/api/raw/v1/export": {
            "post": _operation(
                "export",
                "E3: export a segment's users and events to a file (link sent to hook)",
                _obj(
                    {
                        "segment": _obj(
                            {"segment_id": {"type": "integer"}}, required=("segment_id",)
                        ),
                        "attributes": _ATTRIBUTE_NAMES,
                        "events": _ref("EventsRequest"),
                        "format": {"enum": ["csv", "json", "parquet"]},
                        "hook": {
                            **_STRING,
                            "minLength": 1,
                            "description": "Webhook URL; https:// is assumed without a scheme.",
                        },
                    },
                    required=("segment", "format", "hook"),
                ),
                _ref("Empty"),
            )
        },
        "/api/user/v1/attribute/delete": {
            "post": _operation(
                "attribute_delete",
                "E4: delete whole attributes or values of array attributes",
                _obj(
                    {
                        "users": _users(
                            _obj(
                                {
                                    "identifiers": _ref("Identifiers"),
                                    "insider_id": _STRING,
                                    "whole": _STRINGS,
                                    "partial": {
                                        "type": "object",
                                        "additionalProperties": {"type": "array"},
                                    },
                                    "custom": _obj(
                                        {
                                            "whole": _STRINGS,
                                            "partial": {
                                                "type": "object",
                                                "additionalProperties": {"type": "array"},
                                            },
                                        }
                                    ),
                                }
                            )
                        )
                    },
                    required=("users",),
                ),
                _ref("DataEnvelope"),
            )
        },
        "/api/user/v1/identity": {
            "patch": _operation(
                "identity_update",
                "E5: change the value of one identifier",
                _obj(
                    {
                        "old_identifier": _ref("OneIdentifier"),
                        "new_identifier": _ref("OneIdentifier"),
                    },
                    required=("old_identifier", "new_identifier"),
                ),
                _ref("Empty"),
                not_found=True,
            ),
            "delete": _operation(
                "identity_delete",
                "E6: remove one identifier from its profile",
                _obj({"identifiers": _ref("OneIdentifier")}, required=("identifiers",)),
                _ref("Empty"),
                not_found=True,
                body_optional_type=True,
            ),
        },
        "/api/contact/v1/anonymize": {
            "post": _operation(
                "anonymize_contact",
                "E7: delete a user's PII, user given by insider_id",
                _obj({"insider_id": {**_STRING, "minLength": 1}}, required=("insider_id",)),
                _ref("Empty"),
                not_found=True,
            )
        },
        "/api/user/v1/anonymize": {
            "post": _operation(
                "anonymize_user",
                "E8: delete a user's PII, user given by identifiers",
                identity_lookup,
                _ref("Empty"),
                not_found=True,
            )
        },
        "/api/user/v1/delete": {
            "post": _operation(
                "delete_user",
                "E9: delete a user profile and all its data",
                identity_lookup,
                _ref("Empty"),
                not_found=True,
            )
        },
        "/api/user/v3/metadata/columns": {
            "post": _operation(
                "metadata_columns",
                "E10: list attribute columns or event names and parameters",
                _obj({"table": {"enum": ["contacts", "events"]}}, required=("table",)),
                _metadata_answer(),
            )
        },
        "/api/local/v1/segments": {
            "post": _operation(
                "create_segment",
                "Create a dynamic segment for E3 (local only)",
                _obj(
                    {
                        "name": {**_STRING, "minLength": 1},
                        "conditions": {"type": "array", "items": _ref("SegmentCondition")},
                    },
                    required=("name", "conditions"),
                ),
                _obj(
                    {"segment_id": {"type": "integer", "minimum": 2}},
                    required=("segment_id",),
                    additionalProperties=False,
                ),
                limited=False,
                tag="local",
            ),
            "get": _operation(
                "list_segments",
                "List the partner's segments, segment 1 (All users) first (local only)",
                None,
                _obj(
                    {"segments": {"type": "array", "items": _ref("Segment")}},
                    required=("segments",),
                    additionalProperties=False,
                ),
                limited=False,
                tag="local",
            ),
        },
        "/api/local/v1/attributes": {
            "post": _operation(
                "declare_attribute",
                "Declare a custom attribute's type (local only)",
                _obj(
                    {
                        "name": {**_STRING, "minLength": 1, "maxLength": 128},
                        "type": {"enum": _ATTRIBUTE_TYPES},
                    },
                    required=("name", "type"),
                ),
                _obj(
                    {"name": _STRING, "type": {"enum": _ATTRIBUTE_TYPES}},
                    required=("name", "type"),
                    additionalProperties=False,
                ),
                limited=False,
                tag="local",
            ),
            "get": _operation(
                "list_attributes",
                "List custom attributes and identifiers with their types (local only)",
                None,
                _obj(
                    {
                        "attributes": {
                            "type": "array",
                            "items": _obj(
                                {
                                    "name": _STRING,
                                    "type": {"enum": [*_ATTRIBUTE_TYPES, "identifier"]},
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
                    "200": _json(
                        _obj(
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
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
        "/exports/{partner}/p/{file}": {
            "get": {
                "operationId": "download_export",
                "summary": "Download an export file by its capability URL (local only)",
                "tags": ["local"],
                "security": [],
                "parameters": [
                    {"name": "partner", "in": "path", "required": True, "schema": _STRING},
                    {
                        "name": "file",
                        "in": "path",
                        "required": True,
                        "schema": _STRING,
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
                    "404": _json(
                        _go_error({"const": "export not found: no data"}),
                        "Unknown, expired or withdrawn file, or another partner's.",
                    ),
                },
            }
        },
    }


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
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": _responses(),
            "securitySchemes": {
                "PartnerName": {"type": "apiKey", "in": "header", "name": "X-PARTNER-NAME"},
                "RequestToken": {"type": "apiKey", "in": "header", "name": "X-REQUEST-TOKEN"},
            },
        },
    }


async def handle_openapi(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(_document_bytes(services.config.base_url), media_type="application/json")
