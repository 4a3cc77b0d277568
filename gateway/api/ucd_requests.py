"""GraphQL inputs -> typed UCD requests (docs/ucd-rest-api.md §3.1, §3.3-§3.8).

Only values the caller gave are written: an omitted (or null) input field is left out of
the request, because the UCD ignores nulls anyway (§4.7.4) and every byte counts against
the 5,000,000-byte limit of a 1,000-user request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.api.inputs import (
    DeleteAttributesInput,
    EventInput,
    ExportInput,
    IdentifierInput,
    UserKey,
    UserUpsertInput,
)
from gateway.api.names import ATTRIBUTE_INPUT_WRITE_NAMES, EVENT_INPUT_PARAMS
from gateway.api.scalars import format_datetime
from gateway.api.types import default_from
from gateway.api.validation import usable
from gateway.errors import BadUserInput
from gateway.ucd import names
from gateway.ucd.requests import (
    AttributeDeleteUser,
    Attributes,
    EventsQuery,
    ExportRequest,
    Identifier,
    UpsertEvent,
    UpsertUser,
    UserRef,
    WantedEvents,
)
from gateway.ucd.times import epoch_seconds

__all__ = [
    "delete_attributes_user",
    "export_request",
    "key_ref",
    "to_identifier",
    "upsert_user",
]


def key_ref(key: UserKey) -> UserRef:
    """The hashable form of a key; blocked values are dropped, as the UCD ignores them."""
    return UserRef.of(
        insider_id=key.insider_id or None,
        email=key.email if usable(key.email, email=True) else None,
        phone_number=key.phone_number if usable(key.phone_number) else None,
        uuid=key.uuid if usable(key.uuid) else None,
        custom=[(c.name, c.value) for c in key.custom or () if usable(c.value)],
    )


def to_identifier(given: IdentifierInput) -> Identifier:
    """The one identifier an IdentifierInput gives (@oneOf, checked by validation)."""
    if isinstance(given.email, str):
        return Identifier.of(names.EMAIL, given.email)
    if isinstance(given.phone_number, str):
        return Identifier.of(names.PHONE_NUMBER, given.phone_number)
    if isinstance(given.uuid, str):
        return Identifier.of(names.UUID, given.uuid)
    custom = given.custom
    assert custom is not None
    return Identifier.of(names.CUSTOM, custom.value, custom.name)


def _event(event: EventInput) -> UpsertEvent:
    params: dict[str, Any] = dict(event.params) if isinstance(event.params, Mapping) else {}
    for field, param in EVENT_INPUT_PARAMS.items():
        value = getattr(event, field)
        if value is not None:
            params[param] = value
    custom: dict[str, Any] = dict(event.custom) if isinstance(event.custom, Mapping) else {}
    return UpsertEvent(event.name, format_datetime(event.timestamp), params, custom)


def upsert_user(item: UserUpsertInput) -> UpsertUser:
    """One E1 user."""
    attributes: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    if item.attributes is not None:
        for field, write_name in ATTRIBUTE_INPUT_WRITE_NAMES.items():
            value = getattr(item.attributes, field)
            if value is not None:
                attributes[write_name] = (
                    format_datetime(value) if isinstance(value, datetime) else value
                )
        custom = {c.name: c.value for c in item.attributes.custom or () if c.value is not None}
    return UpsertUser(
        key_ref(item.key),
        attributes,
        custom,
        tuple(_event(e) for e in item.events or ()),
        append=item.append_arrays,
    )


def delete_attributes_user(item: DeleteAttributesInput) -> AttributeDeleteUser:
    """One E4 user (§3.4.1)."""
    partial: dict[str, list[Any]] = {}
    custom_partial: dict[str, list[Any]] = {}
    for values in item.values or ():
        target = custom_partial if values.custom else partial
        target.setdefault(values.name, []).extend(values.values)
    return AttributeDeleteUser(
        key_ref(item.key),
        whole=tuple(item.names or ()),
        partial=partial,
        custom_whole=tuple(item.custom_names or ()),
        custom_partial=custom_partial,
    )


def export_request(export: ExportInput, *, hook: str, now: datetime) -> ExportRequest:
    """The E3 request (§3.3.1). Event window defaults as for ``User.events``: the last 30 days."""
    try:
        segment_id = int(export.segment_id)
    except ValueError:
        raise BadUserInput("segmentId must be an integer", path="input.segmentId") from None
    attributes: Attributes | None = None
    if export.attributes is None and export.custom_attributes is None:
        attributes = names.ALL_ATTRIBUTES
    else:
        listed = [*(export.attributes or ())]
        listed += [names.custom_read_name(name) for name in export.custom_attributes or ()]
        attributes = tuple(listed) or None
    events = None
    if export.events:
        until = export.to or now
        since = export.from_ or default_from(until)
        if since > until:
            raise BadUserInput("from must not be after to", path="input.from")
        # Floored like the reads' windows (epoch_seconds); int(timestamp()) truncated
        # instants before 1970 towards zero, one second late.
        events = EventsQuery(
            epoch_seconds(since),
            epoch_seconds(until),
            tuple(WantedEvents(e.name, tuple(e.params)) for e in export.events),
        )
    if attributes is None and events is None:
        raise BadUserInput("an export needs attributes or events", path="input")
    return ExportRequest(segment_id, export.format.value, hook, attributes, events)
