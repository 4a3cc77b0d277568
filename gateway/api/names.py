"""GraphQL field names <-> UCD names, in one place.

Used in both directions: selections are pushed down as UCD read names and parameter
names (selection.py), inputs are written with UCD write names (mutation.py), and the
UCD's per-user error keys are mapped back to GraphQL input paths (errors_map.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from strawberry.utils.str_converters import to_camel_case

__all__ = [
    "ATTRIBUTE_INPUT_WRITE_NAMES",
    "EVENT_FIELD_PARAMS",
    "EVENT_INPUT_PARAMS",
    "USER_FIELD_READ_NAMES",
    "WRITE_NAME_TO_INPUT_FIELD",
]

#: User's typed fields -> the read name the UCD answers under (§4.7.1).
#: ``gdpr`` is the UCD's key for the GDPR opt-in ("the UCD returns gdpr_optin as gdpr").
USER_FIELD_READ_NAMES: Final[Mapping[str, str]] = {
    "email": "email",
    "phoneNumber": "phone_number",
    "uuid": "uuid",
    "name": "name",
    "surname": "surname",
    "birthday": "birthday",
    "gender": "gender",
    "age": "age",
    "language": "language",
    "country": "country",
    "city": "city",
    "locale": "lo",
    "emailOptin": "email_optin",
    "smsOptin": "sms_optin",
    "whatsappOptin": "whatsapp_optin",
    "gdprOptin": "gdpr",
    "staticSegmentIds": "static_segment_id",
}

#: EventInput's typed fields (python names) -> the default parameter written.
EVENT_INPUT_PARAMS: Final[Mapping[str, str]] = {
    "product_id": "product_id",
    "product_name": "name",
    "taxonomy": "taxonomy",
    "currency": "currency",
    "unit_price": "unit_price",
    "unit_sale_price": "unit_sale_price",
    "quantity": "quantity",
    "event_group_id": "event_group_id",
    "url": "url",
}

#: AttributesInput's typed fields (python names) -> the UCD write name (§4.7.1).
ATTRIBUTE_INPUT_WRITE_NAMES: Final[Mapping[str, str]] = {
    "email": "email",
    "phone_number": "phone_number",
    "uuid": "uuid",
    "name": "name",
    "surname": "surname",
    "birthday": "birthday",
    "gender": "gender",
    "age": "age",
    "language": "language",
    "country": "country",
    "city": "city",
    "locale": "locale",
    "email_optin": "email_optin",
    "sms_optin": "sms_optin",
    "whatsapp_optin": "whatsapp_optin",
    "gdpr_optin": "gdpr_optin",
    "static_segment_ids": "static_segment_id",
}

#: Event's typed fields (GraphQL names) -> the parameter to ask for: the same fields as
#: EventInput's. ``name``, ``timestamp`` (``created_date``) and ``source`` come with every
#: event (§3.2.3), so they ask for nothing.
EVENT_FIELD_PARAMS: Final[Mapping[str, str]] = {
    to_camel_case(field): param for field, param in EVENT_INPUT_PARAMS.items()
}

#: Default parameter -> EventInput field (GraphQL name), for mapping errors back.
EVENT_PARAM_TO_INPUT_FIELD: Final[Mapping[str, str]] = {
    param: to_camel_case(field) for field, param in EVENT_INPUT_PARAMS.items()
}

#: UCD write names and aliases -> AttributesInput field (GraphQL name), for errors.
#: The field names are strawberry's camelCase of the python names; ``lo`` and ``list_id``
#: are the UCD's other names for ``locale`` and ``static_segment_id`` (§4.7.1).
WRITE_NAME_TO_INPUT_FIELD: Final[Mapping[str, str]] = {
    **{write: to_camel_case(field) for field, write in ATTRIBUTE_INPUT_WRITE_NAMES.items()},
    "lo": "locale",
    "list_id": "staticSegmentIds",
}
