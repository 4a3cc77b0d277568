"""``Query.catalog``: the partner's attributes and events, as the UCD's E10 lists them.

Each list is its own resolver reading its own E10 table through the process's
``CatalogCache`` (gateway/catalog.py), so ``catalog { attributes { name } }`` costs one
call at most and a fresh cache none. Names follow ``Attribute`` and ``Event.param``: a
custom attribute, identifier or parameter is listed without its ``c_`` prefix and with
``custom: true``, so a name from here can be passed to ``attribute(name:, custom:)``,
``attributes(customNames:)`` or ``param(name:, custom:)`` as it is.

E10 gives attribute types (``string``, ``number``, ``boolean``, ``date``, ``array``) but no
parameter types; a default parameter's type is the one the UCD checks it against
(§4.8.2: ``string``, ``string_array``, ``number``, ``integer``), and any other parameter
takes any JSON value: its ``type`` is null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import strawberry

from gateway.api.context import Context
from gateway.api.described import described_field
from gateway.ucd.answers import MetadataColumn
from gateway.ucd.client import ATTRIBUTE_COLUMNS, EVENT_COLUMNS, MetadataTable
from gateway.ucd.names import CUSTOM_PREFIX, PARAM_TYPES

__all__ = ["CATALOG_FIELD_TABLES", "Catalog", "CatalogAttribute", "CatalogEvent", "CatalogParam"]

Info = strawberry.Info[Context, Any]

#: The E10 table each field of ``Catalog`` reads (the operation budget plans by it).
CATALOG_FIELD_TABLES: Final[Mapping[str, MetadataTable]] = {
    "attributes": ATTRIBUTE_COLUMNS,
    "events": EVENT_COLUMNS,
}


def _name(key: str) -> tuple[str, bool]:
    """(name, custom) of an E10 key: custom names are read as ``c_<name>`` (§3.9)."""
    if key.startswith(CUSTOM_PREFIX):
        return key.removeprefix(CUSTOM_PREFIX), True
    return key, False


@strawberry.type(description="An attribute column of the partner (E10 contacts).")
class CatalogAttribute:
    name: str = strawberry.field(
        description="As attribute(name:) takes it: e.g. email, gdpr; custom ones without c_."
    )
    custom: bool = strawberry.field(
        description="A custom attribute or custom identifier (pass custom: true)."
    )
    type: str | None = strawberry.field(
        description="The UCD's type name, e.g. string, number, boolean, date, array; or null."
    )
    display_name: str = strawberry.field(description="The UCD's label, e.g. Profile ID.")

    @classmethod
    def from_ucd(cls, column: MetadataColumn) -> CatalogAttribute:
        name, custom = _name(column.key)
        return cls(name=name, custom=custom, type=column.type, display_name=column.display_name)


@strawberry.type(description="A parameter the UCD has recorded for an event.")
class CatalogParam:
    name: str = strawberry.field(
        description="As Event.param(name:) takes it; custom ones without c_."
    )
    custom: bool
    type: str | None = strawberry.field(
        description=(
            "string, string_array, number or integer for the parameters the UCD checks; "
            "null for any other (any JSON value)."
        )
    )

    @classmethod
    def from_ucd(cls, column: MetadataColumn) -> CatalogParam:
        name, custom = _name(column.key)
        kind = column.type if column.type is not None or custom else PARAM_TYPES.get(name)
        return cls(name=name, custom=custom, type=kind)


@strawberry.type(description="An event name the UCD has accepted for the partner.")
class CatalogEvent:
    name: str = strawberry.field(description="As User.events(names:) takes it.")
    params: list[CatalogParam] = strawberry.field(description="In the UCD's order.")

    @classmethod
    def from_ucd(cls, column: MetadataColumn) -> CatalogEvent:
        params = [CatalogParam.from_ucd(param) for param in column.params]
        return cls(name=column.key, params=params)


@strawberry.type(
    description=(
        "The partner's attributes and events, from the UCD's metadata; "
        "cached for UCD_GATEWAY_CATALOG_TTL seconds."
    )
)
class Catalog:
    @described_field("In the UCD's order; custom attributes and identifiers with custom: true.")
    async def attributes(self, info: Info) -> list[CatalogAttribute]:
        columns = await _columns(info, ATTRIBUTE_COLUMNS)
        return [CatalogAttribute.from_ucd(column) for column in columns]

    @described_field("In the UCD's order.")
    async def events(self, info: Info) -> list[CatalogEvent]:
        columns = await _columns(info, EVENT_COLUMNS)
        return [CatalogEvent.from_ucd(column) for column in columns]


async def _columns(info: Info, table: MetadataTable) -> tuple[MetadataColumn, ...]:
    context = info.context
    return tuple(await context.catalog.columns(context.ucd, table))
