"""GraphQL field names <-> UCD names, in one place.

Used in both directions: selections are pushed down as UCD read names and parameter
names (selection.py), inputs are written with UCD write names (ucd_requests.py), answers
are read into typed fields (types.py), and the UCD's per-user error keys are mapped back
to GraphQL input paths (errors_map.py).

The UCD's side of each pair is ``gateway.ucd.names``; the GraphQL fields are named after
it (strawberry camel-cases the python names), with two exceptions: the list field
``staticSegmentIds`` and ``productName`` for the event parameter ``name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from gateway.api.strawberry_internals import graphql_name
from gateway.ucd import names

__all__ = [
    "ATTRIBUTE_INPUT_WRITE_NAMES",
    "ATTRIBUTE_TYPES",
    "EVENT_FIELD_PARAMS",
    "EVENT_INPUT_PARAMS",
    "EVENT_PARAM_TO_INPUT_FIELD",
    "KEY_FIELDS",
    "USER_FIELD_READ_NAMES",
    "WRITE_NAME_TO_INPUT_FIELD",
]

#: The python field names that are not the UCD's name (see the module doc).
_RENAMED_ATTRIBUTES: Final[Mapping[str, str]] = {names.STATIC_SEGMENT_ID: "static_segment_ids"}
_RENAMED_PARAMS: Final[Mapping[str, str]] = {names.PRODUCT_NAME: "product_name"}

#: AttributesInput's and User's typed fields (python names) -> the UCD write name (§4.7.1).
ATTRIBUTE_INPUT_WRITE_NAMES: Final[Mapping[str, str]] = {
    _RENAMED_ATTRIBUTES.get(write, write): write for write in names.DEFAULT_ATTRIBUTES
}

#: User's typed fields (python names) -> the UCD type of their attribute (§4.7.1).
ATTRIBUTE_TYPES: Final[Mapping[str, str]] = {
    field: names.DEFAULT_ATTRIBUTES[write][1]
    for field, write in ATTRIBUTE_INPUT_WRITE_NAMES.items()
}

#: User's typed fields (GraphQL names) -> the read name the UCD answers under (§4.7.1).
#: ``gdpr`` is the UCD's key for the GDPR opt-in ("the UCD returns gdpr_optin as gdpr").
USER_FIELD_READ_NAMES: Final[Mapping[str, str]] = {
    graphql_name(field): names.DEFAULT_ATTRIBUTES[write][0]
    for field, write in ATTRIBUTE_INPUT_WRITE_NAMES.items()
}

#: EventInput's and Event's typed fields (python names) -> the default parameter.
EVENT_INPUT_PARAMS: Final[Mapping[str, str]] = {
    _RENAMED_PARAMS.get(param, param): param for param in names.TYPED_EVENT_PARAMS
}

#: Event's typed fields (GraphQL names) -> the parameter to ask for: the same fields as
#: EventInput's. ``name``, ``timestamp`` (``created_date``) and ``source`` come with every
#: event (§3.2.3), so they ask for nothing.
EVENT_FIELD_PARAMS: Final[Mapping[str, str]] = {
    graphql_name(field): param for field, param in EVENT_INPUT_PARAMS.items()
}

#: Default parameter -> EventInput field (GraphQL name), for mapping errors back.
EVENT_PARAM_TO_INPUT_FIELD: Final[Mapping[str, str]] = {
    param: graphql_name(field) for field, param in EVENT_INPUT_PARAMS.items()
}

#: UCD write names -> AttributesInput field (GraphQL name), for errors. The UCD's other
#: write names (``names.WRITE_NAME_ALIASES``) are resolved by gateway.ucd.error_keys.
WRITE_NAME_TO_INPUT_FIELD: Final[Mapping[str, str]] = {
    write: graphql_name(field) for field, write in ATTRIBUTE_INPUT_WRITE_NAMES.items()
}

#: The UCD's ways of naming a user -> UserKey field (GraphQL name), for errors: the
#: fields are named after them (``insider_id`` -> ``insiderId``).
KEY_FIELDS: Final[Mapping[str, str]] = {
    kind: graphql_name(kind)
    for kind in (names.INSIDER_ID, names.EMAIL, names.PHONE_NUMBER, names.UUID, names.CUSTOM)
}
