"""E2 — read one user's attributes and events: ``POST /api/user/v1/profile`` (§3.2).

validate (§3.2.2 order) -> admit("profile", 1 + distinct wanted names) -> one snapshot:
    lookup (§4.3) -> attributes by read name -> events per wanted name, newest first
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.local_ucd.attributes.names import DEFAULT_ATTRIBUTES
from gateway.local_ucd.attributes.views import load_attributes
from gateway.local_ucd.events.query import (
    AttributesRequest,
    Selection,
    WantedItem,
    distinct_wanted,
    parse_selection,
    render_event,
    resolve_attribute_names,
    select_events,
)
from gateway.local_ucd.http import ApiError
from gateway.local_ucd.identity.identifiers import lookup_profile
from gateway.local_ucd.identity.user_identity import parse_user_identity
from gateway.local_ucd.ratelimit import PROFILE_QUOTA
from gateway.local_ucd.services import UcdRequest

__all__ = ["handle_profile"]

# Read names of the default attributes in §4.7.1 order: ``*`` answers list them this way.
_DEFAULT_ORDER = {attribute.read_name: rank for rank, attribute in enumerate(DEFAULT_ATTRIBUTES)}


async def handle_profile(req: UcdRequest) -> Any:
    """The §3.2.3 answer for one user, or 400 (§3.2.2) / 429 / 404."""
    body = req.body
    identity = await parse_user_identity(req)
    selection = parse_selection(body)
    quota = body.get("quota")
    if quota is not None and not isinstance(quota, bool):
        raise ApiError.bad_request("quota must be boolean")

    wanted = distinct_wanted(selection.events)
    cost = 1 + len(wanted)
    req.admit("profile", cost)

    partner = req.partner

    def read(conn: sqlite3.Connection) -> dict[str, Any] | None:
        pk = lookup_profile(conn, partner, identity.insider_id, identity.identifiers)
        if pk is None:
            return None
        return _answer(conn, pk, selection, wanted)

    answer = await req.services.store.read(read)
    if answer is None:
        raise ApiError.not_found()
    if quota:
        answer["quota"] = {
            "cost": cost,
            "used": req.services.limiter.profile_used(partner),
            "total": PROFILE_QUOTA,
        }
    return answer


def _answer(
    conn: sqlite3.Connection, pk: int, selection: Selection, wanted: list[WantedItem]
) -> dict[str, Any]:
    (insider_id,) = conn.execute("SELECT insider_id FROM profiles WHERE pk = ?", (pk,)).fetchone()
    attributes: dict[str, Any] = {"iid": insider_id}
    if selection.attributes is not None:
        attributes.update(_attributes(conn, pk, selection.attributes))
    events: dict[str, list[dict[str, Any]]] = {}
    if selection.events is not None:
        start_s, end_s = selection.events.start_s, selection.events.end_s
        for item in wanted:
            rows = select_events(conn, pk, item, start_s, end_s, newest_first=True)
            events[item.event_name] = [render_event(row, item.params) for row in rows]
    return {"attributes": attributes, "events": events}


def _attributes(conn: sqlite3.Connection, pk: int, requested: AttributesRequest) -> dict[str, Any]:
    names = None if requested == "*" else resolve_attribute_names(requested)
    if names is not None and not any(read.kind in ("default", "custom") for read in names):
        return {}  # only iid or unknown names: nothing to load
    values = load_attributes(conn, pk)
    if names is None:
        # Every attribute: defaults in §4.7.1 order, then c_<name> by name (keys are not
        # ordered by the contract; a stable order is kinder to readers and diffs).
        last = len(_DEFAULT_ORDER)
        ordered = sorted(values, key=lambda key: (_DEFAULT_ORDER.get(key, last), key))
        return {key: values[key] for key in ordered}
    return {read.key: values[read.key] for read in names if read.key in values}
