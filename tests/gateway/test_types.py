"""Typed fields of Event and User, read out of an answer field by field.

``Event.from_ucd`` and ``User.from_ucd`` spell one keyword argument per field (they run
once per event and per user of every answer). The tables of ``gateway.api.names`` and
the types of ``gateway.ucd.names`` are the oracle here: every typed field must read its
own UCD key with the converter of its UCD type, and no other field may see that key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.api.names import ATTRIBUTE_INPUT_WRITE_NAMES, ATTRIBUTE_TYPES, EVENT_INPUT_PARAMS
from gateway.api.types import Event, User
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.names import DEFAULT_ATTRIBUTES, PARAM_TYPES

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)

#: Per UCD type: a value the UCD may answer, what the typed field holds, and a value of
#: another type (which reads as null). Numbers come as sent (§2.4): 3.0 is a quantity of 3.
SAMPLES: dict[str, tuple[Any, Any, Any]] = {
    "string": ("text", "text", 7),
    "number": (12.5, 12.5, "12.5"),
    "integer": (3.0, 3, 3.5),
    "boolean": (False, False, "false"),
    "date": ("1990-01-02T03:04:05Z", datetime(1990, 1, 2, 3, 4, 5, tzinfo=UTC), 631249445),
    "string_array": (["a", "b"], ["a", "b"], ["a", 1]),
    "number_array": ([1, 2.0], [1, 2], [1, "2"]),
}

#: The contract types age, the one number attribute, as Int: 36.0 reads as 36, 36.5 as null.
AGE_SAMPLE = (36.0, 36, 36.5)

EVENT_FIELDS = [
    pytest.param(field, param, SAMPLES[PARAM_TYPES[param]], id=field)
    for field, param in EVENT_INPUT_PARAMS.items()
]
USER_FIELDS = [
    pytest.param(
        field,
        DEFAULT_ATTRIBUTES[write][0],
        AGE_SAMPLE if ATTRIBUTE_TYPES[field] == "number" else SAMPLES[ATTRIBUTE_TYPES[field]],
        id=field,
    )
    for field, write in ATTRIBUTE_INPUT_WRITE_NAMES.items()
]


def event(raw: dict[str, Any]) -> Event:
    return Event.from_ucd("purchase", NOW, raw)


def user(attributes: dict[str, Any]) -> User:
    return User.from_ucd(ProfileAnswer(attributes, {}), custom_identifiers=(), now=NOW)


def typed(obj: object, fields: list[str]) -> dict[str, Any]:
    return {field: getattr(obj, field) for field in fields}


def test_every_typed_event_parameter_and_attribute_has_a_sample() -> None:
    assert {PARAM_TYPES[p] for p in EVENT_INPUT_PARAMS.values()} <= set(SAMPLES)
    assert set(ATTRIBUTE_TYPES.values()) <= set(SAMPLES)
    assert len(EVENT_FIELDS) == 9
    assert len(USER_FIELDS) == 17


@pytest.mark.parametrize(("field", "param", "sample"), EVENT_FIELDS)
def test_an_event_field_reads_its_own_parameter(
    field: str, param: str, sample: tuple[Any, Any, Any]
) -> None:
    sent, read, _ = sample
    others = dict.fromkeys(EVENT_INPUT_PARAMS)
    assert typed(event({param: sent}), list(others)) == {**others, field: read}


@pytest.mark.parametrize(("field", "param", "sample"), EVENT_FIELDS)
def test_an_event_parameter_of_another_type_reads_as_null(
    field: str, param: str, sample: tuple[Any, Any, Any]
) -> None:
    assert getattr(event({param: sample[2]}), field) is None


@pytest.mark.parametrize(("field", "read_name", "sample"), USER_FIELDS)
def test_a_user_field_reads_its_own_attribute(
    field: str, read_name: str, sample: tuple[Any, Any, Any]
) -> None:
    sent, read, _ = sample
    others = dict.fromkeys(ATTRIBUTE_INPUT_WRITE_NAMES)
    assert typed(user({read_name: sent}), list(others)) == {**others, field: read}


@pytest.mark.parametrize(("field", "read_name", "sample"), USER_FIELDS)
def test_an_attribute_of_another_type_reads_as_null(
    field: str, read_name: str, sample: tuple[Any, Any, Any]
) -> None:
    assert getattr(user({read_name: sample[2]}), field) is None


def test_an_event_with_every_parameter_fills_every_field() -> None:
    """All parameters at once, as a purchase answer carries them, plus its source."""
    raw = {param: SAMPLES[PARAM_TYPES[param]][0] for param in EVENT_INPUT_PARAMS.values()}
    read = event({**raw, "source": "web"})
    assert read.source == "web"
    assert typed(read, list(EVENT_INPUT_PARAMS)) == {
        field: SAMPLES[PARAM_TYPES[param]][1] for field, param in EVENT_INPUT_PARAMS.items()
    }
