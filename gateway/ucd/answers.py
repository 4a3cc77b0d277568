"""Typed answers of the UCD: E2's profile, E10's metadata columns, E3's webhook body.

E1/E4's data envelope has its own module (``envelope``). Parsing checks the shape the
gateway relies on and raises ``UpstreamError`` otherwise, so nothing past this module
guesses at a UCD body.

A profile's events stay the dicts orjson decoded (§3.2.3: ``{"created_date", "source",
<params>}``): wrapping each in an object doubled the decoding time of a 100-event answer
(~45 µs -> ~92 µs, measured), and resolvers only look at the events of their window.
The field names of one event are read here (``created_date``, ``event_source``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from gateway.errors import UpstreamError
from gateway.ucd.names import IID

__all__ = [
    "EventRecord",
    "ExportHook",
    "MetadataColumn",
    "ProfileAnswer",
    "check_metadata",
    "created_date",
    "event_source",
    "parse_metadata",
]

#: One event of a profile answer, as the UCD sent it.
EventRecord = Mapping[str, Any]

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def created_date(event: EventRecord) -> object:
    """The event's time as the UCD wrote it (RFC 3339, §4.8.1), unparsed."""
    return event.get("created_date")


def event_source(event: EventRecord) -> object:
    """Where the UCD recorded the event (web, app, api...), when known."""
    return event.get("source")


@dataclass(frozen=True, slots=True)
class ProfileAnswer:
    """E2's answer (§3.2.3): attributes by read name, events by name (newest first).

    Shared between the resolvers of one request and between requests (in-flight
    sharing), so it is read-only by convention: nothing may change its mappings.
    """

    attributes: Mapping[str, Any]
    events: Mapping[str, Sequence[EventRecord]]

    @classmethod
    def from_wire(cls, body: Any) -> ProfileAnswer:
        if not isinstance(body, dict):
            raise UpstreamError("the UCD sent a profile that is not a JSON object", status=200)
        attributes = body.get("attributes") or _EMPTY
        events = body.get("events") or _EMPTY
        if not isinstance(attributes, Mapping) or not isinstance(events, Mapping):
            raise UpstreamError("the UCD sent a malformed profile", status=200)
        return cls(attributes, events)

    @property
    def insider_id(self) -> str | None:
        iid = self.attributes.get(IID)
        return iid if isinstance(iid, str) else None

    def events_named(self, name: str) -> Sequence[EventRecord]:
        listed = self.events.get(name)
        return listed if isinstance(listed, list) else ()


@dataclass(frozen=True, slots=True)
class MetadataColumn:
    """One E10 entry (§3.9): an attribute column (``type``) or an event (``params``)."""

    key: str
    display_name: str
    type: str | None = None
    params: tuple[MetadataColumn, ...] = ()


def check_metadata(body: Any) -> None:
    """Raise ``UpstreamError`` unless E10 answered a JSON array of objects.

    All that ``/readyz`` asks of the UCD: E10 is undocumented publicly (§3.9), so the
    entries themselves are not checked, and an entry the gateway does not know is fine.
    """
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise UpstreamError("the UCD sent metadata that is not a list of objects", status=200)


def parse_metadata(body: Any) -> list[MetadataColumn]:
    """E10's top-level array of columns, read leniently.

    The array must be a list of objects (``check_metadata``); an entry without a string
    ``key`` is skipped rather than failing the answer (§3.9 is undocumented publicly, so
    the UCD may add entries of other shapes), at every level of ``params``.
    """
    check_metadata(body)
    return _columns(body)


def _columns(items: Any) -> list[MetadataColumn]:
    if not isinstance(items, list):
        return []
    return [_column(item) for item in items if isinstance(item, dict) and _has_key(item)]


def _has_key(item: Mapping[str, Any]) -> bool:
    return isinstance(item.get("key"), str)


def _column(item: Mapping[str, Any]) -> MetadataColumn:
    key: str = item["key"]
    kind = item.get("type")
    return MetadataColumn(
        key=key,
        display_name=str(item.get("display_name", key)),
        type=kind if isinstance(kind, str) else None,
        params=tuple(_columns(item.get("params"))),
    )


@dataclass(frozen=True, slots=True)
class ExportHook:
    """The body the UCD POSTs to an export's ``hook`` when the file is ready (§3.3.3)."""

    url: str

    @classmethod
    def from_wire(cls, body: Any) -> ExportHook | None:
        """None unless the body is ``{"url": <http(s) URL>}``."""
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return None
        return cls(url)
