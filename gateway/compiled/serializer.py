"""The answer of a compiled selection, written straight from the UCD's profile answer.

No ``User`` or ``Event`` object is built: each selected field is read from the answer's
attributes or the event's dict with the same readers ``User.from_ucd`` and
``Event.from_ucd`` use (gateway/api/types.py), and written as graphql-core would
serialize it (gateway/api/scalars.py for DateTime; graphql-core's Int, Float, String,
Boolean and ID). The readers are picked per field from the schema's own field types, so
a field whose type changes is caught at start-up (``Serializers``), not answered wrong.

Where graphql-core would answer an error (an Int out of 32 bits), ``Unanswerable`` is
raised: the executor then runs graphql-core, which reports it as it always has.

Events, newest first as ``User.events`` filters, sorts and cuts them: one dict per event
in the response, nothing else per event (the issue's "no per-event Python object").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from graphql import (
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    get_nullable_type,
)

from gateway.api.names import EVENT_FIELD_PARAMS, USER_FIELD_READ_NAMES

# The readers of User.from_ucd and Event.from_ucd, so both paths read a value alike.
from gateway.api.types import _bool, _float, _int, _int_list, _str, _str_list
from gateway.compiled.plan import EVENT_FIELDS, USER_FIELDS, PlannedField, collect
from gateway.ucd.answers import EventRecord, ProfileAnswer, created_date, event_source
from gateway.ucd.times import format_datetime, parse_instant

__all__ = ["Serializers", "Unanswerable"]

#: graphql-core's Int: a signed 32-bit integer; others are its error.
_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1

#: Reads one field's output from a profile's attributes.
UserReader = Callable[[Mapping[str, Any]], Any]
#: Reads one field's output from an event: (its name, its instant, the UCD's dict).
EventReader = Callable[[str, datetime, EventRecord], Any]


class Unanswerable(Exception):
    """The answer holds a value graphql-core would report as an error: run graphql-core."""


def _checked_int(value: int | None) -> int | None:
    if value is not None and not _INT_MIN <= value <= _INT_MAX:
        raise Unanswerable
    return value


def _int_out(value: Any) -> int | None:
    return _checked_int(_int(value))


def _int_list_out(value: Any) -> list[int] | None:
    ints = _int_list(value)
    if ints is not None:
        for item in ints:
            _checked_int(item)
    return ints


def _datetime_out(value: Any) -> str | None:
    stamp = parse_instant(value)
    return None if stamp is None else format_datetime(stamp)


def _type_name(field_type: Any) -> str:
    """``Int``, ``[Int]``: the nullable type's name, lists in brackets."""
    nullable = get_nullable_type(field_type)
    if isinstance(nullable, GraphQLList):
        return f"[{_type_name(nullable.of_type)}]"
    assert isinstance(nullable, GraphQLNamedType)
    return nullable.name


#: A value read from the UCD -> its output, per GraphQL type (the readers of types.py).
_OUTPUTS: Final[Mapping[str, Callable[[Any], Any]]] = {
    "String": _str,
    "Boolean": _bool,
    "Int": _int_out,
    "Float": _float,
    "DateTime": _datetime_out,
    "[Int]": _int_list_out,
    "[String]": _str_list,
}


def _attribute_reader(read_name: str, output: Callable[[Any], Any]) -> UserReader:
    return lambda attributes: output(attributes.get(read_name))


def _param_reader(param: str, output: Callable[[Any], Any]) -> EventReader:
    return lambda name, stamp, raw: output(raw.get(param))


def _insider_id(attributes: Mapping[str, Any]) -> str | None:
    return ProfileAnswer(attributes, {}).insider_id


def _typename(type_name: str) -> Callable[..., str]:
    return lambda *_: type_name


def _event_name(name: str, stamp: datetime, raw: EventRecord) -> str:
    return name


def _event_time(name: str, stamp: datetime, raw: EventRecord) -> str:
    return format_datetime(stamp)


def _event_source(name: str, stamp: datetime, raw: EventRecord) -> str | None:
    return _str(event_source(raw))


class Serializers:
    """The readers of every compiled field, built once per schema."""

    def __init__(self, schema: GraphQLSchema) -> None:
        user = schema.type_map["User"]
        event = schema.type_map["Event"]
        assert isinstance(user, GraphQLObjectType)
        assert isinstance(event, GraphQLObjectType)
        self.user: dict[str, UserReader] = {"__typename": _typename("User")}
        self.user["insiderId"] = _insider_id
        for name, read_name in USER_FIELD_READ_NAMES.items():
            self.user[name] = _attribute_reader(
                read_name, _OUTPUTS[_type_name(user.fields[name].type)]
            )
        self.event: dict[str, EventReader] = {
            "__typename": _typename("Event"),
            "name": _event_name,
            "timestamp": _event_time,
            "source": _event_source,
        }
        for name, param in EVENT_FIELD_PARAMS.items():
            self.event[name] = _param_reader(param, _OUTPUTS[_type_name(event.fields[name].type)])
        # The plan compiles exactly the fields written here.
        assert set(self.user) == USER_FIELDS | {"__typename"}
        assert set(self.event) == EVENT_FIELDS | {"__typename"}

    def user_fields(
        self,
        grouped: Mapping[str, Sequence[PlannedField]],
        profile: ProfileAnswer,
        events: Callable[[Sequence[PlannedField], ProfileAnswer], list[dict[str, Any]]],
    ) -> dict[str, Any]:
        """One user's answer; ``events`` answers an ``events`` field (its arguments are
        the executor's)."""
        attributes = profile.attributes
        answer: dict[str, Any] = {}
        for key, planned in grouped.items():
            name = planned[0].name
            if name == "events":
                answer[key] = events(planned, profile)
            else:
                answer[key] = self.user[name](attributes)
        return answer

    def events(
        self,
        planned: Sequence[PlannedField],
        profile: ProfileAnswer,
        *,
        names: Sequence[str],
        since: datetime,
        until: datetime,
        last: int | None,
        variables: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        """``User.events``' answer, filtered, ordered and cut as its resolver does."""
        found: list[tuple[datetime, str, EventRecord]] = []
        for name in dict.fromkeys(names):
            for raw in profile.events_named(name):
                stamp = parse_instant(created_date(raw))
                if stamp is not None and since <= stamp <= until:
                    found.append((stamp, name, raw))
        if len(names) > 1:
            # Stable, on the instant alone: the resolver's order for equal instants.
            found.sort(key=_instant, reverse=True)
        if last is not None:
            found = found[:last]
        children = [child for field in planned for child in field.children]
        readers = [
            (key, self.event[fields[0].name])
            for key, fields in collect(children, variables).items()
        ]
        return [
            {key: read(name, stamp, raw) for key, read in readers} for stamp, name, raw in found
        ]


def _instant(item: tuple[datetime, str, EventRecord]) -> datetime:
    return item[0]
