"""The default attributes of §4.7.1: write names, aliases, read names, types, display names.

Storage keeps default attributes under their canonical *write* name (``gdpr_optin``,
``lo``, ``static_segment_id``); reads (E2, E3, segments) use *read* names (``gdpr``).
The identifier attributes ``email``, ``phone_number`` and ``uuid`` are views of the
``identifiers`` table and never stored as attributes (§4.7.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.ucd.names import READ_NAME_ALIASES

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "IDENTIFIER_ATTRIBUTES",
    "DefaultAttribute",
    "ReadName",
    "by_write_name",
    "resolve_read_name",
]


@dataclass(frozen=True)
class DefaultAttribute:
    write_name: str
    aliases: tuple[str, ...]
    read_name: str
    type: str  # string | number | boolean | date | number_array
    display_name: str

    @property
    def is_identifier(self) -> bool:
        return self.write_name in IDENTIFIER_ATTRIBUTES


#: In the order of §4.7.1, which is the order of E10 and of ``*`` exports.
DEFAULT_ATTRIBUTES: tuple[DefaultAttribute, ...] = (
    DefaultAttribute("email", (), "email", "string", "Email"),
    DefaultAttribute("phone_number", (), "phone_number", "string", "Phone Number"),
    DefaultAttribute("uuid", (), "uuid", "string", "UUID"),
    DefaultAttribute("name", (), "name", "string", "Name"),
    DefaultAttribute("surname", (), "surname", "string", "Surname"),
    DefaultAttribute("gender", (), "gender", "string", "Gender"),
    DefaultAttribute("age", (), "age", "number", "Age"),
    DefaultAttribute("birthday", (), "birthday", "date", "Birthday"),
    DefaultAttribute("language", (), "language", "string", "Language"),
    DefaultAttribute("country", (), "country", "string", "Country"),
    DefaultAttribute("city", (), "city", "string", "City"),
    DefaultAttribute("lo", ("locale",), "lo", "string", "Locale"),
    DefaultAttribute("email_optin", (), "email_optin", "boolean", "Email Opt-In"),
    DefaultAttribute("sms_optin", (), "sms_optin", "boolean", "SMS Opt-In"),
    DefaultAttribute("whatsapp_optin", (), "whatsapp_optin", "boolean", "WhatsApp Opt-In"),
    DefaultAttribute("gdpr_optin", (), "gdpr", "boolean", "GDPR Opt-In"),
    DefaultAttribute(
        "static_segment_id", ("list_id",), "static_segment_id", "number_array", "Static Segment IDs"
    ),
)

IDENTIFIER_ATTRIBUTES = frozenset({"email", "phone_number", "uuid"})

_BY_WRITE: dict[str, DefaultAttribute] = {}
for _attr in DEFAULT_ATTRIBUTES:
    _BY_WRITE[_attr.write_name] = _attr
    for _alias in _attr.aliases:
        _BY_WRITE[_alias] = _attr
_BY_READ: dict[str, DefaultAttribute] = {a.read_name: a for a in DEFAULT_ATTRIBUTES}

# Extra read-side spellings (§4.7.1): the write name of gdpr, and the short identifier
# names; the contract's, shared with the gateway's push-down (gateway.ucd.names).
_READ_SPELLINGS: Final = READ_NAME_ALIASES


def by_write_name(name: str) -> DefaultAttribute | None:
    """The default attribute a write name or alias denotes (``gdpr`` is not a write name)."""
    return _BY_WRITE.get(name)


@dataclass(frozen=True)
class ReadName:
    """A requested name resolved (§4.7.1 read names).

    kind: ``iid``, ``default`` (``attribute`` set), ``custom`` (``custom_name`` set, no
    prefix), or ``unknown`` (not a known default name; still a column in exports).
    ``key`` is the canonical read name: the key in E2 answers and the E3 column suffix.
    """

    key: str
    kind: str
    attribute: DefaultAttribute | None = None
    custom_name: str | None = None


def resolve_read_name(name: str) -> ReadName:
    """Resolve a name of an E2/E3 request or a segment condition.

    >>> resolve_read_name("gdpr_optin").key
    'gdpr'
    >>> resolve_read_name("c_tier").custom_name
    'tier'
    """
    if name == "iid":
        return ReadName("iid", "iid")
    if name.startswith("c_") and len(name) > 2:
        return ReadName(name, "custom", custom_name=name[2:])
    canonical = _READ_SPELLINGS.get(name, name)
    attribute = _BY_READ.get(canonical)
    if attribute is None:
        return ReadName(name, "unknown")
    return ReadName(attribute.read_name, "default", attribute=attribute)
