"""The local UCD's segment endpoint (§5, ``/api/local/v1/segments``): made-up segments.

Insider's UCD has no such endpoint (segments are made in its panel); the local UCD lets
the seed command define its demo segments, so E3 exports have something to export.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import httpx

from gateway.ucd.paths import LOCAL_SEGMENTS_PATH

__all__ = ["ensure_local_segments"]


async def ensure_local_segments(
    http: httpx.AsyncClient, headers: Mapping[str, str], segments: Iterable[Mapping[str, object]]
) -> tuple[int, ...]:
    """The ids of ``segments`` (``{"name", "conditions"}``), creating those not there yet.

    Seeding again must not pile up copies, so a segment whose name exists is reused.
    Raises ``httpx.HTTPStatusError`` when the endpoint refuses.
    """
    listed = await http.get(LOCAL_SEGMENTS_PATH, headers=headers)
    listed.raise_for_status()
    existing = {s["name"]: s["segment_id"] for s in listed.json()["segments"]}
    segment_ids = []
    for segment in segments:
        if segment["name"] in existing:
            segment_ids.append(int(existing[segment["name"]]))
            continue
        answer = await http.post(LOCAL_SEGMENTS_PATH, json=dict(segment), headers=headers)
        answer.raise_for_status()
        segment_ids.append(int(answer.json()["segment_id"]))
    return tuple(segment_ids)
