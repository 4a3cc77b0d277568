"""The UCD's names: attributes (write and read names), event parameters and their types.

Everything here is the UCD's vocabulary (docs/ucd-rest-api.md §4.7, §4.8); the GraphQL
layer maps its own field names onto these (``gateway.api.names``).

Read names differ from write names in a few places (§4.7.1): the UCD is written
``gdpr_optin`` and answers ``gdpr``; ``locale`` is answered as ``lo``. The gateway resolves
aliases itself, so that ``attribute(name: "locale")`` finds the ``lo`` key of an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "AGE",
    "ALL_ATTRIBUTES",
    "BIRTHDAY",
    "CITY",
    "COUNTRY",
    "CURRENCY",
    "CUSTOM",
    "CUSTOM_PREFIX",
    "DEFAULT_ATTRIBUTES",
    "EMAIL",
    "EMAIL_OPTIN",
    "EVENTS_WITH_REQUIRED_PARAMS",
    "EVENT_GROUP_ID",
    "GDPR",
    "GDPR_OPTIN",
    "GENDER",
    "IID",
    "INSIDER_ID",
    "LANGUAGE",
    "LO",
    "LOCALE",
    "NAME",
    "PARAM_TYPES",
    "PHONE_NUMBER",
    "PRODUCT_ID",
    "PRODUCT_NAME",
    "QUANTITY",
    "READ_NAME_ALIASES",
    "REQUIRED_PARAMS",
    "SMS_OPTIN",
    "SOURCE",
    "STATIC_SEGMENT_ID",
    "SURNAME",
    "TAXONOMY",
    "TYPED_EVENT_PARAMS",
    "UNIT_PRICE",
    "UNIT_SALE_PRICE",
    "URL",
    "UUID",
    "WHATSAPP_OPTIN",
    "WRITE_NAME_ALIASES",
    "canonical_read_name",
    "custom_read_name",
]

# One constant per name the gateway reads or writes outside this package, so no other
# module spells a UCD name as a literal (tests/test_architecture.py), and so the hot
# constructors of gateway.api.types can spell each keyword argument out (a table
# unpacked with ** cost ~40% more per event).

#: The default identifier kinds (§4.2); custom identifiers sit under ``custom``.
EMAIL: Final = "email"
PHONE_NUMBER: Final = "phone_number"
UUID: Final = "uuid"
CUSTOM: Final = "custom"

#: The profile's id as a read name (§3.2.3): every E2 answer carries it.
IID: Final = "iid"
#: The profile's id where a request names a user by it (§3.1.2), and in error keys.
INSIDER_ID: Final = "insider_id"
#: "Every attribute" (§3.2.2), in E2 and E3 requests.
ALL_ATTRIBUTES: Final = "*"
#: Read-name prefix of custom attributes and identifiers, and of custom event parameters.
CUSTOM_PREFIX: Final = "c_"

#: The other default attributes (§4.7.1), by the name the gateway writes. Two are read
#: under another name: gdpr_optin as ``gdpr`` and locale as ``lo``.
NAME: Final = "name"
SURNAME: Final = "surname"
GENDER: Final = "gender"
AGE: Final = "age"
BIRTHDAY: Final = "birthday"
LANGUAGE: Final = "language"
COUNTRY: Final = "country"
CITY: Final = "city"
LOCALE: Final = "locale"
LO: Final = "lo"
EMAIL_OPTIN: Final = "email_optin"
SMS_OPTIN: Final = "sms_optin"
WHATSAPP_OPTIN: Final = "whatsapp_optin"
GDPR_OPTIN: Final = "gdpr_optin"
GDPR: Final = "gdpr"
STATIC_SEGMENT_ID: Final = "static_segment_id"

#: Read-name aliases the UCD resolves (§4.7.1 "Read names"); the answer uses the target.
READ_NAME_ALIASES: Final[Mapping[str, str]] = {
    GDPR_OPTIN: GDPR,
    LOCALE: LO,
    "list_id": STATIC_SEGMENT_ID,
    "em": EMAIL,
    "pn": PHONE_NUMBER,
}

#: The UCD's other write names for two attributes the gateway writes under the names
#: above (§4.7.1 table: ``lo`` for ``locale``, ``list_id`` for ``static_segment_id``);
#: the UCD's error keys use whichever name the request used.
WRITE_NAME_ALIASES: Final[Mapping[str, str]] = {LO: LOCALE, "list_id": STATIC_SEGMENT_ID}

#: The default attributes (§4.7.1) by the name the gateway writes, in the spec's order,
#: with the name the UCD answers under and its type (as named in the UCD's error texts).
DEFAULT_ATTRIBUTES: Final[Mapping[str, tuple[str, str]]] = {
    write: (READ_NAME_ALIASES.get(write, write), kind)
    for write, kind in (
        (EMAIL, "string"),
        (PHONE_NUMBER, "string"),
        (UUID, "string"),
        (NAME, "string"),
        (SURNAME, "string"),
        (GENDER, "string"),
        (AGE, "number"),
        (BIRTHDAY, "date"),
        (LANGUAGE, "string"),
        (COUNTRY, "string"),
        (CITY, "string"),
        (LOCALE, "string"),
        (EMAIL_OPTIN, "boolean"),
        (SMS_OPTIN, "boolean"),
        (WHATSAPP_OPTIN, "boolean"),
        (GDPR_OPTIN, "boolean"),
        (STATIC_SEGMENT_ID, "number_array"),
    )
}


def custom_read_name(name: str) -> str:
    """``c_<name>``: how custom attributes, identifiers and parameters are read (§3.2.3)."""
    return CUSTOM_PREFIX + name


def canonical_read_name(name: str, *, custom: bool = False) -> str:
    """The key the UCD answers under for a requested attribute name.

    >>> canonical_read_name("gdpr_optin"), canonical_read_name("tier", custom=True)
    ('gdpr', 'c_tier')
    """
    if custom:
        return CUSTOM_PREFIX + name
    return READ_NAME_ALIASES.get(name, name)


# --- event parameters (§4.8.2) ---------------------------------------------------------

PRODUCT_ID: Final = "product_id"
#: The default parameter the product's name is written as (the GraphQL field is productName).
PRODUCT_NAME: Final = "name"
TAXONOMY: Final = "taxonomy"
CURRENCY: Final = "currency"
UNIT_PRICE: Final = "unit_price"
UNIT_SALE_PRICE: Final = "unit_sale_price"
QUANTITY: Final = "quantity"
EVENT_GROUP_ID: Final = "event_group_id"
URL: Final = "url"
#: The event's source (§4.8.2): a string parameter on write, a field of every event on read.
SOURCE: Final = "source"

#: The default parameters the gateway types, in the order of its GraphQL fields.
TYPED_EVENT_PARAMS: Final = (
    PRODUCT_ID,
    PRODUCT_NAME,
    TAXONOMY,
    CURRENCY,
    UNIT_PRICE,
    UNIT_SALE_PRICE,
    QUANTITY,
    EVENT_GROUP_ID,
    URL,
)

#: §4.8.2: the type-checked default parameters and their type names (as in error texts).
PARAM_TYPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        (
            PRODUCT_ID,
            PRODUCT_NAME,
            CURRENCY,
            EVENT_GROUP_ID,
            URL,
            LOCALE,
            "color",
            "size",
            "product_image_url",
            "session_id",
            "promotion_name",
            SOURCE,
        ),
        "string",
    ),
    TAXONOMY: "string_array",
    **dict.fromkeys((UNIT_PRICE, UNIT_SALE_PRICE, "stock", "promotion_discount"), "number"),
    QUANTITY: "integer",
}

#: §3.1.3: these events need these parameters, reported in this order.
REQUIRED_PARAMS: Final = (EVENT_GROUP_ID, CURRENCY, UNIT_SALE_PRICE)
EVENTS_WITH_REQUIRED_PARAMS: Final = frozenset({"purchase", "cart_page_view"})
