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

__all__ = ["Serializers", "Unanswerable", "is_formatted"]

#: graphql-core's Int: a signed 32-bit integer; others are its error.
_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1

#: Reads one field's output from a profile's attributes.
UserReader = Callable[[Mapping[str, Any]], Any]
#: Reads one field's output from an event: (its name, its instant, the UCD's dict).
EventReader = Callable[[str, datetime, EventRecord], Any]


#: Writes the selected fields of each (instant, name, event) found.
EventWriter = Callable[[list[tuple[datetime, str, EventRecord]]], list[dict[str, Any]]]

#: Generated event writers kept, one per distinct event selection.
_MAX_WRITERS: Final = 256


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


def _insider_id(attributes: Mapping[str, Any]) -> str | None:
    return ProfileAnswer(attributes, {}).insider_id


def _typename(type_name: str) -> Callable[..., str]:
    return lambda *_: type_name


def _event_time(name: str, stamp: datetime, raw: EventRecord) -> str:
    text = created_date(raw)
    return text if isinstance(text, str) and is_formatted(text) else format_datetime(stamp)


def is_formatted(text: str) -> bool:
    """True when ``text``, an instant that parses, is already what ``format_datetime``
    writes for it: UTC with ``Z``, a year of four digits from 1000, no zero at the end
    of a fraction of at most six digits. Then it is the answer as it is: formatting
    cost ~7 of the ~17 µs an event took (loaded machine), and the UCD writes its
    instants this way (§4.8.1).

    >>> is_formatted("2025-01-10T21:35:20Z"), is_formatted("2025-01-10T21:35:20.5Z")
    (True, True)
    >>> is_formatted("2025-01-10T21:35:20.50Z"), is_formatted("2025-01-10T21:35:20+00:00")
    (False, False)
    """
    size = len(text)
    if text[-1] != "Z" or text[10] != "T" or text[0] == "0":
        return False
    if size == 20:
        return True
    return 22 <= size <= 27 and text[19] == "." and text[-2] != "0" and text[20:-1].isdigit()


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
        # The event writer inlines parameters and the name (see _event_writer); these
        # are the fields it calls a reader for.
        self.event: dict[str, EventReader] = {
            "__typename": _typename("Event"),
            "timestamp": _event_time,
            "source": _event_source,
        }
        self._event_outputs: dict[str, Callable[[Any], Any]] = {
            name: _OUTPUTS[_type_name(event.fields[name].type)] for name in EVENT_FIELD_PARAMS
        }
        self._event_writers: dict[tuple[tuple[str, str], ...], EventWriter] = {}
        # The plan compiles exactly the fields written here.
        assert set(self.user) == USER_FIELDS | {"__typename"}
        assert {*self.event, *self._event_outputs, "name"} == EVENT_FIELDS | {"__typename"}

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
        shape = tuple((key, fields[0].name) for key, fields in collect(children, variables).items())
        write = self._event_writers.get(shape)
        if write is None:
            if len(self._event_writers) >= _MAX_WRITERS:
                self._event_writers.clear()  # bounded; rebuilt on use
            write = self._event_writers[shape] = self._event_writer(shape)
        return write(found)

    def _event_writer(self, shape: tuple[tuple[str, str], ...]) -> EventWriter:
        """A function, generated for one event selection, that writes a list of events
        as one list comprehension of dict displays: no per-field call through a table
        and no per-event loop over the fields (5.4 -> ~3 µs an event for 6 fields).

        Only names of this module go into the source: each response key and reader is
        bound to a generated variable (``K0``, ``R0``), never spliced in as text.
        """
        scope: dict[str, Any] = {}
        items: list[str] = []
        for index, (key, name) in enumerate(shape):
            scope[f"K{index}"] = key
            param = EVENT_FIELD_PARAMS.get(name)
            if param is not None:
                scope[f"P{index}"] = param
                scope[f"O{index}"] = self._event_outputs[name]
                items.append(f"K{index}: O{index}(raw.get(P{index}))")
            elif name == "name":
                items.append(f"K{index}: name")
            else:
                scope[f"R{index}"] = self.event[name]
                items.append(f"K{index}: R{index}(name, stamp, raw)")
        source = (
            "def write(found):\n"
            f"    return [{{{', '.join(items)}}} for stamp, name, raw in found]\n"
        )
        exec(compile(source, "<compiled event writer>", "exec"), scope)  # noqa: S102
        writer: EventWriter = scope["write"]
        return writer


def _instant(item: tuple[datetime, str, EventRecord]) -> datetime:
    return item[0]
