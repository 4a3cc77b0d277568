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
    "ALL_ATTRIBUTES",
    "CUSTOM",
    "CUSTOM_PREFIX",
    "DEFAULT_ATTRIBUTES",
    "EMAIL",
    "EVENTS_WITH_REQUIRED_PARAMS",
    "IID",
    "INSIDER_ID",
    "LOCALE",
    "PARAM_TYPES",
    "PHONE_NUMBER",
    "PRODUCT_NAME",
    "READ_NAME_ALIASES",
    "REQUIRED_PARAMS",
    "SOURCE",
    "STATIC_SEGMENT_ID",
    "TYPED_EVENT_PARAMS",
    "UUID",
    "WRITE_NAME_ALIASES",
    "canonical_read_name",
    "custom_read_name",
]

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

LOCALE: Final = "locale"
STATIC_SEGMENT_ID: Final = "static_segment_id"

#: Read-name aliases the UCD resolves (§4.7.1 "Read names"); the answer uses the target.
READ_NAME_ALIASES: Final[Mapping[str, str]] = {
    "gdpr_optin": "gdpr",
    LOCALE: "lo",
    "list_id": STATIC_SEGMENT_ID,
    "em": EMAIL,
    "pn": PHONE_NUMBER,
}

#: The UCD's other write names for two attributes the gateway writes under the names
#: below (§4.7.1 table: ``lo`` for ``locale``, ``list_id`` for ``static_segment_id``);
#: the UCD's error keys use whichever name the request used.
WRITE_NAME_ALIASES: Final[Mapping[str, str]] = {"lo": LOCALE, "list_id": STATIC_SEGMENT_ID}

#: The default attributes (§4.7.1) by the name the gateway writes, in the spec's order,
#: with the name the UCD answers under and its type (as named in the UCD's error texts).
DEFAULT_ATTRIBUTES: Final[Mapping[str, tuple[str, str]]] = {
    write: (READ_NAME_ALIASES.get(write, write), kind)
    for write, kind in (
        (EMAIL, "string"),
        (PHONE_NUMBER, "string"),
        (UUID, "string"),
        ("name", "string"),
        ("surname", "string"),
        ("gender", "string"),
        ("age", "number"),
        ("birthday", "date"),
        ("language", "string"),
        ("country", "string"),
        ("city", "string"),
        (LOCALE, "string"),
        ("email_optin", "boolean"),
        ("sms_optin", "boolean"),
        ("whatsapp_optin", "boolean"),
        ("gdpr_optin", "boolean"),
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

#: The default parameter the product's name is written as (the GraphQL field is productName).
PRODUCT_NAME: Final = "name"
#: The event's source (§4.8.2): a string parameter on write, a field of every event on read.
SOURCE: Final = "source"

#: The default parameters the gateway types, in the order of its GraphQL fields.
TYPED_EVENT_PARAMS: Final = (
    "product_id",
    PRODUCT_NAME,
    "taxonomy",
    "currency",
    "unit_price",
    "unit_sale_price",
    "quantity",
    "event_group_id",
    "url",
)

#: §4.8.2: the type-checked default parameters and their type names (as in error texts).
PARAM_TYPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        (
            "product_id",
            PRODUCT_NAME,
            "currency",
            "event_group_id",
            "url",
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
    "taxonomy": "string_array",
    **dict.fromkeys(("unit_price", "unit_sale_price", "stock", "promotion_discount"), "number"),
    "quantity": "integer",
}

#: §3.1.3: these events need these parameters, reported in this order.
REQUIRED_PARAMS: Final = ("event_group_id", "currency", "unit_sale_price")
EVENTS_WITH_REQUIRED_PARAMS: Final = frozenset({"purchase", "cart_page_view"})


# --- read names of the typed fields ------------------------------------------------------
# One constant per key that gateway.api.types reads out of an E2 answer, so its hot
# constructors can spell each keyword argument out (a table unpacked with ** cost ~40%
# more per event) without writing the UCD's keys as literals outside gateway/ucd.

#: The typed default event parameters (§4.8.2) besides PRODUCT_NAME, as written and read.
PRODUCT_ID: Final = "product_id"
TAXONOMY: Final = "taxonomy"
CURRENCY: Final = "currency"
UNIT_PRICE: Final = "unit_price"
UNIT_SALE_PRICE: Final = "unit_sale_price"
QUANTITY: Final = "quantity"
EVENT_GROUP_ID: Final = "event_group_id"
URL: Final = "url"

#: The default attributes' read names (§4.7.1) besides EMAIL, PHONE_NUMBER, UUID and
#: STATIC_SEGMENT_ID. Two differ from the write name: gdpr_optin reads as ``gdpr`` and
#: locale as ``lo``.
NAME: Final = "name"
SURNAME: Final = "surname"
GENDER: Final = "gender"
AGE: Final = "age"
BIRTHDAY: Final = "birthday"
LANGUAGE: Final = "language"
COUNTRY: Final = "country"
CITY: Final = "city"
LO: Final = "lo"
EMAIL_OPTIN: Final = "email_optin"
SMS_OPTIN: Final = "sms_optin"
WHATSAPP_OPTIN: Final = "whatsapp_optin"
GDPR: Final = "gdpr"

# Kept apart from the list at the top so that this block stays one separate piece.
__all__ += [
    "AGE",
    "BIRTHDAY",
    "CITY",
    "COUNTRY",
    "CURRENCY",
    "EMAIL_OPTIN",
    "EVENT_GROUP_ID",
    "GDPR",
    "GENDER",
    "LANGUAGE",
    "LO",
    "NAME",
    "PRODUCT_ID",
    "QUANTITY",
    "SMS_OPTIN",
    "SURNAME",
    "TAXONOMY",
    "UNIT_PRICE",
    "UNIT_SALE_PRICE",
    "URL",
    "WHATSAPP_OPTIN",
]
