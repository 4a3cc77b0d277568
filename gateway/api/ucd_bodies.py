"""GraphQL inputs -> UCD request bodies (shared/ucd-rest-api.md §3.1, §3.3-§3.8).

Only values the caller gave are written: an omitted (or null) input field is left out of
the body, because the UCD ignores nulls anyway (§4.7.4) and every byte counts against
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
from gateway.loaders import ALL_ATTRIBUTES, UserRef, normalise_email

__all__ = [
    "delete_attributes_user",
    "export_body",
    "identifier_body",
    "key_ref",
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


def identifier_body(identifier: IdentifierInput) -> dict[str, Any]:
    """``{"email": ...}`` or ``{"custom": {"<name>": ...}}``: one entry (§3.5.1)."""
    if isinstance(identifier.email, str):
        return {"email": normalise_email(identifier.email)}
    if isinstance(identifier.phone_number, str):
        return {"phone_number": identifier.phone_number}
    if isinstance(identifier.uuid, str):
        return {"uuid": identifier.uuid}
    custom = identifier.custom
    assert custom is not None
    return {"custom": {custom.name: custom.value}}


def identifier_ref(identifier: IdentifierInput) -> UserRef:
    body = identifier_body(identifier)
    custom = body.pop("custom", {})
    return UserRef.of(**body, custom=custom.items())


def _event(event: EventInput) -> dict[str, Any]:
    params: dict[str, Any] = dict(event.params) if isinstance(event.params, Mapping) else {}
    for field, param in EVENT_INPUT_PARAMS.items():
        value = getattr(event, field)
        if value is not None:
            params[param] = value
    if isinstance(event.custom, Mapping) and event.custom:
        params["custom"] = dict(event.custom)
    body: dict[str, Any] = {"event_name": event.name, "timestamp": format_datetime(event.timestamp)}
    if params:
        body["event_params"] = params
    return body


def upsert_user(item: UserUpsertInput) -> dict[str, Any]:
    """One E1 user object."""
    user = key_ref(item.key).body()
    attributes: dict[str, Any] = {}
    if item.attributes is not None:
        for field, write_name in ATTRIBUTE_INPUT_WRITE_NAMES.items():
            value = getattr(item.attributes, field)
            if value is not None:
                attributes[write_name] = (
                    format_datetime(value) if isinstance(value, datetime) else value
                )
        custom = {c.name: c.value for c in item.attributes.custom or () if c.value is not None}
        if custom:
            attributes["custom"] = custom
    if attributes:
        user["attributes"] = attributes
    if item.events:
        user["events"] = [_event(e) for e in item.events]
    if not item.append_arrays:
        user["append"] = False
    return user


def delete_attributes_user(item: DeleteAttributesInput) -> dict[str, Any]:
    """One E4 user object (§3.4.1)."""
    user = key_ref(item.key).body()
    if item.names:
        user["whole"] = list(item.names)
    partial: dict[str, list[Any]] = {}
    custom_partial: dict[str, list[Any]] = {}
    for values in item.values or ():
        target = custom_partial if values.custom else partial
        target.setdefault(values.name, []).extend(values.values)
    if partial:
        user["partial"] = partial
    custom: dict[str, Any] = {}
    if item.custom_names:
        custom["whole"] = list(item.custom_names)
    if custom_partial:
        custom["partial"] = custom_partial
    if custom:
        user["custom"] = custom
    return user


def export_body(export: ExportInput, *, hook: str, now: datetime) -> dict[str, Any]:
    """The E3 body (§3.3.1). Event window defaults as for ``User.events``: the last 30 days."""
    try:
        segment_id = int(export.segment_id)
    except ValueError:
        raise BadUserInput("segmentId must be an integer", path="input.segmentId") from None
    body: dict[str, Any] = {
        "segment": {"segment_id": segment_id},
        "format": export.format.value,
        "hook": hook,
    }
    if export.attributes is None and export.custom_attributes is None:
        body["attributes"] = ALL_ATTRIBUTES
    else:
        names = list(export.attributes or ())
        names += [f"c_{name}" for name in export.custom_attributes or ()]
        if names:
            body["attributes"] = names
    if export.events:
        until = export.to or now
        since = export.from_ or default_from(until)
        if since > until:
            raise BadUserInput("from must not be after to", path="input.from")
        body["events"] = {
            "start_date": int(since.timestamp()),
            "end_date": int(until.timestamp()),
            "wanted": [{"event_name": e.name, "params": list(e.params)} for e in export.events],
        }
    if "attributes" not in body and "events" not in body:
        raise BadUserInput("an export needs attributes or events", path="input")
    return body
