"""``POST`` / ``GET /api/local/v1/segments`` (§5.5): create and list dynamic segments.

Ids come from the ``partner_counters`` row ``segment_id`` (last id handed out), so they
start at 2, increase and are never reused; segment 1, "All users", is listed first and
never stored. Conditions are checked and evaluated by
:mod:`gateway.local_ucd.exports.segments`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.local_ucd.exports.segments import ALL_USERS, ALL_USERS_NAME, parse_conditions
from gateway.local_ucd.http import ApiError
from gateway.local_ucd.services import UcdRequest

__all__ = ["handle_create_segment", "handle_list_segments"]

_COUNTER = "segment_id"


def _parse_name(body: Mapping[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError.bad_request("name must be defined")
    return name


async def handle_create_segment(req: UcdRequest) -> Any:
    name = _parse_name(req.body)
    conditions = parse_conditions(req.body.get("conditions"))
    stored = orjson.dumps([condition.to_json() for condition in conditions]).decode()
    partner = req.partner

    def write(conn: sqlite3.Connection) -> int:
        # The counter holds the last id handed out; starting it at ALL_USERS makes 2 the first.
        (segment_id,) = conn.execute(
            "INSERT INTO partner_counters (partner, counter, value) VALUES (?, ?, ?)"
            " ON CONFLICT (partner, counter) DO UPDATE SET value = value + 1 RETURNING value",
            (partner, _COUNTER, ALL_USERS + 1),
        ).fetchone()
        conn.execute(
            "INSERT INTO segments (partner, segment_id, name, conditions) VALUES (?, ?, ?, ?)",
            (partner, segment_id, name, stored),
        )
        return int(segment_id)

    return {"segment_id": await req.services.store.write(write)}


async def handle_list_segments(req: UcdRequest) -> Any:
    partner = req.partner

    def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            "SELECT segment_id, name, conditions FROM segments WHERE partner = ?"
            " ORDER BY segment_id",
            (partner,),
        )
        return [
            {"segment_id": segment_id, "name": name, "conditions": orjson.loads(conditions)}
            for segment_id, name, conditions in rows
        ]

    stored = await req.services.store.read(read)
    return {
        "segments": [{"segment_id": ALL_USERS, "name": ALL_USERS_NAME, "conditions": []}, *stored]
    }
