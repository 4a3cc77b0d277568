"""The Insider UCD endpoints (§3, E1-E10) in the local UCD's OpenAPI document.

Request bodies refer to the component schemas; answers that only one operation gives
(profile, metadata) are drawn here, next to it.
"""

from __future__ import annotations

from gateway.local_ucd.attributes.names import DEFAULT_ATTRIBUTES
from gateway.local_ucd.events.params import PARAM_TYPES, REQUIRING_EVENTS
from gateway.local_ucd.openapi.operations import api_operation
from gateway.local_ucd.openapi.primitives import (
    ANY,
    DATE,
    STRING,
    STRINGS,
    VALUE_TYPES,
    Schema,
    obj,
    ref,
)
from gateway.local_ucd.ratelimit import PROFILE_QUOTA

__all__ = ["insider_paths"]


def _users(items: Schema) -> Schema:
    return {"type": "array", "maxItems": 1000, "items": items}


_ATTRIBUTE_NAMES: Schema = {
    "description": 'Read names (custom ones as c_<name>), or "*" / ["*"] for all.',
    "anyOf": [{"const": "*"}, STRINGS],
}


def _profile_answer() -> Schema:
    """E2's answer, typed as far as the contract knows it, so a client generated from
    this document (GraphQL Mesh, say) can select ``name``, ``email`` or an event's
    ``product_id`` rather than an opaque object; custom names stay open."""
    params: dict[str, Schema] = {
        name: VALUE_TYPES[kind] for name, kind in PARAM_TYPES.items() if name != "source"
    }
    event = {
        **obj(
            {"created_date": DATE, "source": STRING, **params},
            required=("created_date", "source"),
        ),
        "additionalProperties": {**ANY, "description": "Other parameters, custom as c_<name>."},
        "description": "Requested parameters it has; custom ones as c_<name>.",
    }
    events: Schema = {"type": "array", "items": event}
    attributes: dict[str, Schema] = {"iid": STRING}
    for attribute in DEFAULT_ATTRIBUTES:
        attributes[attribute.read_name] = {
            **VALUE_TYPES[attribute.type],
            "description": attribute.display_name,
        }
    return obj(
        {
            "attributes": {
                **obj(attributes, required=("iid",)),
                "additionalProperties": {**ANY, "description": "Custom attributes as c_<name>."},
                "description": "Requested attributes it has, by read name (§4.7.1).",
            },
            "events": {
                **obj({name: events for name in sorted(REQUIRING_EVENTS)}),
                "additionalProperties": events,
                "description": "One list per wanted event name, newest first.",
            },
            "quota": obj(
                {
                    "cost": {"type": "number"},
                    "used": {"type": "number"},
                    "total": {"const": PROFILE_QUOTA},
                },
                required=("cost", "used", "total"),
                additionalProperties=False,
            ),
        },
        required=("attributes", "events"),
        additionalProperties=False,
    )


def _metadata_answer() -> Schema:
    contact = obj(
        {
            "key": STRING,
            "display_name": STRING,
            # Default attributes report their §4.7.1 type (static_segment_id:
            # number_array); custom array attributes report "array" (§3.9).
            "type": {"enum": ["string", "number", "boolean", "date", "array", "number_array"]},
        },
        required=("key", "display_name", "type"),
        additionalProperties=False,
    )
    param = obj(
        {"key": STRING, "display_name": STRING},
        required=("key", "display_name"),
        additionalProperties=False,
    )
    event = obj(
        {"key": STRING, "display_name": STRING, "params": {"type": "array", "items": param}},
        required=("key", "display_name", "params"),
        additionalProperties=False,
    )
    return {"type": "array", "items": {"anyOf": [contact, event]}}


def insider_paths() -> dict[str, Schema]:
    identity_lookup = obj(
        {
            "identifiers": ref("Identifiers"),
            "insider_id": {**STRING, "description": "Wins over identifiers."},
        }
    )
    return {
        "/api/user/v1/upsert": {
            "post": api_operation(
                "upsert",
                "E1: create or update users (attributes, identifiers, events)",
                obj(
                    {
                        "users": _users(ref("User")),
                        "skip_hook": {"type": "boolean"},
                        "error_callback_endpoint": {"type": "string", "format": "uri"},
                        "append": {"type": "boolean"},
                        "not_append": {"type": "boolean"},
                    },
                    required=("users",),
                ),
                ref("DataEnvelope"),
            )
        },
        "/api/user/v1/profile": {
            "post": api_operation(
                "profile",
                "E2: read one user's attributes and events",
                obj(
                    {
                        "identifiers": ref("Identifiers"),
                        "insider_id": STRING,
                        "attributes": _ATTRIBUTE_NAMES,
                        "events": ref("EventsRequest"),
                        "quota": {"type": "boolean"},
                    }
                ),
                _profile_answer(),
                not_found=True,
            )
        },
        "/api/raw/v1/export": {
            "post": api_operation(
                "export",
                "E3: export a segment's users and events to a file (link sent to hook)",
                obj(
                    {
                        "segment": obj(
                            {"segment_id": {"type": "integer"}}, required=("segment_id",)
                        ),
                        "attributes": _ATTRIBUTE_NAMES,
                        "events": ref("EventsRequest"),
                        "format": {"enum": ["csv", "json", "parquet"]},
                        "hook": {
                            **STRING,
                            "minLength": 1,
                            "description": "Webhook URL; https:// is assumed without a scheme.",
                        },
                    },
                    required=("segment", "format", "hook"),
                ),
                ref("Empty"),
            )
        },
        "/api/user/v1/attribute/delete": {
            "post": api_operation(
                "attribute_delete",
                "E4: delete whole attributes or values of array attributes",
                obj(
                    {
                        "users": _users(
                            obj(
                                {
                                    "identifiers": ref("Identifiers"),
                                    "insider_id": STRING,
                                    "whole": STRINGS,
                                    "partial": {
                                        "type": "object",
                                        "additionalProperties": {"type": "array"},
                                    },
                                    "custom": obj(
                                        {
                                            "whole": STRINGS,
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
                ref("DataEnvelope"),
            )
        },
        "/api/user/v1/identity": {
            "patch": api_operation(
                "identity_update",
                "E5: change the value of one identifier",
                obj(
                    {
                        "old_identifier": ref("OneIdentifier"),
                        "new_identifier": ref("OneIdentifier"),
                    },
                    required=("old_identifier", "new_identifier"),
                ),
                ref("Empty"),
                not_found=True,
            ),
            "delete": api_operation(
                "identity_delete",
                "E6: remove one identifier from its profile",
                obj({"identifiers": ref("OneIdentifier")}, required=("identifiers",)),
                ref("Empty"),
                not_found=True,
                body_optional_type=True,
            ),
        },
        "/api/contact/v1/anonymize": {
            "post": api_operation(
                "anonymize_contact",
                "E7: delete a user's PII, user given by insider_id",
                obj({"insider_id": {**STRING, "minLength": 1}}, required=("insider_id",)),
                ref("Empty"),
                not_found=True,
            )
        },
        "/api/user/v1/anonymize": {
            "post": api_operation(
                "anonymize_user",
                "E8: delete a user's PII, user given by identifiers",
                identity_lookup,
                ref("Empty"),
                not_found=True,
            )
        },
        "/api/user/v1/delete": {
            "post": api_operation(
                "delete_user",
                "E9: delete a user profile and all its data",
                identity_lookup,
                ref("Empty"),
                not_found=True,
            )
        },
        "/api/user/v3/metadata/columns": {
            "post": api_operation(
                "metadata_columns",
                "E10: list attribute columns or event names and parameters",
                obj({"table": {"enum": ["contacts", "events"]}}, required=("table",)),
                _metadata_answer(),
            )
        },
    }
