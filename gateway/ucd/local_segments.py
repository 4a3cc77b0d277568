"""The local UCD's segment endpoint (§5.5, ``/api/local/v1/segments``): typed bodies.

Insider's UCD has no such endpoint (its segments are made in its panel); the local UCD
lets the seed command define its demo segments, so E3 exports have something to export.
``UcdClient.local_segments`` and ``UcdClient.create_local_segment`` call it.

    >>> SegmentDefinition("Gold", (SegmentCondition("c_tier", "eq", "gold"),)).to_wire()
    {'name': 'Gold', 'conditions': [{'attribute': 'c_tier', 'operator': 'eq', 'value': 'gold'}]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gateway.errors import UpstreamError

__all__ = [
    "LocalSegment",
    "SegmentCondition",
    "SegmentDefinition",
    "parse_created_segment",
    "parse_local_segments",
]

#: §5.5's operators; ``exists`` compares presence with ``value`` (a boolean).
Operator = Literal["eq", "neq", "gt", "gte", "lt", "lte", "contains", "exists"]


@dataclass(frozen=True, slots=True)
class SegmentCondition:
    """One condition; ``attribute`` is a read name (§4.7.1: ``city``, ``c_tier``...)."""

    attribute: str
    operator: Operator
    value: object

    def to_wire(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "operator": self.operator, "value": self.value}


@dataclass(frozen=True, slots=True)
class SegmentDefinition:
    """The ``POST`` body: a named segment whose conditions are ANDed (none: every user)."""

    name: str
    conditions: tuple[SegmentCondition, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "conditions": [c.to_wire() for c in self.conditions]}


@dataclass(frozen=True, slots=True)
class LocalSegment:
    """One segment of the ``GET`` answer (its conditions are not read)."""

    segment_id: int
    name: str


def parse_local_segments(body: Any) -> list[LocalSegment]:
    """``{"segments": [{"segment_id", "name", ...}, ...]}``, in ascending id."""
    listed = body.get("segments") if isinstance(body, dict) else None
    if not isinstance(listed, list):
        raise UpstreamError("the local UCD sent a segment list without segments", status=200)
    segments = []
    for item in listed:
        segment_id = item.get("segment_id") if isinstance(item, dict) else None
        name = item.get("name") if isinstance(item, dict) else None
        if type(segment_id) is not int or not isinstance(name, str):
            raise UpstreamError("the local UCD sent a malformed segment", status=200)
        segments.append(LocalSegment(segment_id, name))
    return segments


def parse_created_segment(body: Any) -> int:
    """``{"segment_id": <int>}``: the id of the segment just created."""
    segment_id = body.get("segment_id") if isinstance(body, dict) else None
    if type(segment_id) is not int:
        raise UpstreamError("the local UCD sent no id for the new segment", status=200)
    return segment_id
