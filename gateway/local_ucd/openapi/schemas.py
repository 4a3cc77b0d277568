"""Reusable component schemas of the local UCD's OpenAPI document (§5.3).

Identifiers, attributes, events, users, event queries, the E1/E4 data envelope and
segments, referred to from the operations as ``#/components/schemas/<name>``. Default
attributes and type-checked event parameters come from the tables the endpoints use, so
the document cannot drift from them.
"""

from __future__ import annotations

from gateway.local_ucd.attributes.names import DEFAULT_ATTRIBUTES
from gateway.local_ucd.events.params import PARAM_TYPES
from gateway.local_ucd.exports.segments import OPERATORS
from gateway.local_ucd.openapi.errors import error_schemas
from gateway.local_ucd.openapi.primitives import (
    ANY,
    NUMBERS,
    STRING,
    STRINGS,
    VALUE_TYPES,
    Schema,
    obj,
    ref,
)

__all__ = ["component_schemas"]


def _identifier_schemas() -> dict[str, Schema]:
    custom = {
        "type": "object",
        "description": "Custom identifiers: name -> string value.",
        "propertyNames": {"minLength": 1, "maxLength": 128},
        "additionalProperties": STRING,
    }
    return {
        "Identifiers": obj(
            {
                "email": {**STRING, "description": "Trimmed and lower-cased (§4.2)."},
                "phone_number": {**STRING, "description": "E.164, e.g. +905551112233."},
                "uuid": STRING,
                "custom": custom,
            },
            additionalProperties=False,
            description="A user's identifiers (§4.2).",
        ),
        "OneIdentifier": {
            **obj(
                {
                    "email": STRING,
                    "phone_number": STRING,
                    "uuid": STRING,
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
        value = VALUE_TYPES[attribute.type]
        for name in (attribute.write_name, *attribute.aliases):
            properties[name] = {**value, "description": attribute.display_name}
    properties["custom"] = {
        "type": "object",
        "description": "Custom attributes by name, without the c_ prefix (§4.7.2).",
        "propertyNames": {"minLength": 1, "maxLength": 128},
        "additionalProperties": {
            "anyOf": [
                STRING,
                {"type": "number"},
                {"type": "boolean"},
                STRINGS,
                NUMBERS,
            ]
        },
    }
    return {
        **obj(properties, minProperties=1),
        "description": "Default attributes by write name or alias (§4.7.1); others are ignored.",
    }


def _event_schema() -> Schema:
    params: dict[str, Schema] = {name: VALUE_TYPES[t] for name, t in PARAM_TYPES.items()}
    params["custom"] = {"type": "object", "description": "Custom parameters (any JSON value)."}
    return obj(
        {
            "event_name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"},
            "timestamp": {"type": "string", "format": "date-time"},
            "event_params": {
                **obj(params),
                "description": "Default parameters at the root, custom ones under custom (§4.8.2).",
            },
            "custom": {"type": "object", "description": "Merged into the custom parameters."},
        },
        required=("event_name", "timestamp"),
    )


def _user_schema() -> Schema:
    return {
        **obj(
            {
                "identifiers": ref("Identifiers"),
                "insider_id": {"type": "string", "minLength": 1},
                "attributes": ref("Attributes"),
                "events": {"type": "array", "items": ref("Event")},
                "append": {"type": "boolean"},
                "not_append": {"type": "boolean"},
                "object_attributes": {**ANY, "description": "Accepted and ignored."},
            },
        ),
        "description": (
            "identifiers or insider_id, and attributes or events. A user failing §3.1.3 is "
            "reported in the 200 data envelope, not with a 400."
        ),
    }


def _events_request() -> Schema:
    filter_ = obj(
        {
            "key": STRING,
            "operator": {"const": "eq"},
            "values": {"type": "array", "minItems": 1},
        },
        required=("key", "operator", "values"),
    )
    wanted = obj(
        {
            "event_name": STRING,
            "params": {**STRINGS, "description": "Custom parameters as c_<name>."},
            "filters": {"type": "array", "items": filter_},
            "limit_per_source": {"type": "integer", "minimum": 1},
        },
        required=("event_name", "params"),
    )
    return obj(
        {
            "start_date": {"type": "integer", "description": "Epoch seconds, inclusive."},
            "end_date": {"type": "integer", "description": "Epoch seconds, inclusive."},
            "wanted": {"type": "array", "items": wanted},
        },
        required=("start_date", "end_date", "wanted"),
    )


def _data_envelope() -> Schema:
    empty = {"type": "object", "maxProperties": 0}
    count = {"type": "integer", "minimum": 1}
    successful = {
        "anyOf": [empty, obj({"count": count}, required=("count",), additionalProperties=False)]
    }
    errors = {
        "type": "object",
        "additionalProperties": {"type": "array", "items": STRING, "minItems": 1},
        "description": "users.N.<path>.<rule> -> messages.",
    }
    fail = {
        "anyOf": [
            empty,
            obj(
                {"count": count, "errors": errors},
                required=("count", "errors"),
                additionalProperties=False,
            ),
        ]
    }
    data = obj(
        {"successful": successful, "fail": fail},
        required=("successful", "fail"),
        additionalProperties=False,
    )
    return {
        **obj({"data": data}, required=("data",), additionalProperties=False),
        "description": "Per-user outcome of E1 and E4 (§3.1.5).",
    }


def _segment_schemas() -> dict[str, Schema]:
    condition = obj(
        {
            "attribute": {**STRING, "description": "A read name of §4.7.1, iid or c_<name>."},
            "operator": {"enum": list(OPERATORS)},
            "value": {**ANY, "description": "Required except for exists (boolean, default true)."},
        },
        required=("attribute", "operator"),
    )
    segment = obj(
        {
            "segment_id": {"type": "integer", "minimum": 1},
            "name": STRING,
            "conditions": {"type": "array", "items": condition},
        },
        required=("segment_id", "name", "conditions"),
    )
    return {"SegmentCondition": condition, "Segment": segment}


def component_schemas() -> dict[str, Schema]:
    return {
        **error_schemas(),
        **_identifier_schemas(),
        "Attributes": _attributes_schema(),
        "Event": _event_schema(),
        "User": _user_schema(),
        "EventsRequest": _events_request(),
        "DataEnvelope": _data_envelope(),
        "Empty": {"type": "object", "maxProperties": 0, "description": "The empty object {}."},
        **_segment_schemas(),
    }
