"""Checks of input the UCD would refuse, run before any UCD call.

The rules are the UCD's own (docs/ucd-rest-api.md §3.1.3, §4.2, §4.8): formats of
email and phone number, event names, the required parameters of ``purchase`` and
``cart_page_view``, custom names of 1 to 128 characters, keys that name nobody; and the
gateway's own bound on identifier values (at most 1,024 characters, no control
characters: ``IDENTIFIER_VALUE``, which the UCD does not have). Each
problem is a ``Problem(path, message)`` whose path is the GraphQL input path
(``users.3.key.email``); messages reuse the UCD's texts where it has one.

Where problems go (decided here, used by query.py and mutation.py):
* single arguments (``user(key)``, ``users(keys)``, ``deletePii(key)``, identifier
  mutations): the whole field fails with ``BAD_USER_INPUT`` and the first path
  (``raise_first``), as the UCD would refuse the call as a whole;
* lists of write items (``upsertUsers``, ``deleteAttributes``): each refused item gets
  ``ok: false`` with its paths in ``ItemResult.errors`` and is not sent; the valid items
  still go through. The UCD itself treats users of one request independently
  (§3.1.3 "the other users are unaffected"), and one typo should not block 999 users.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.api.inputs import (
    DeleteAttributesInput,
    EventInput,
    IdentifierInput,
    UserKey,
    UserUpsertInput,
)
from gateway.api.names import EVENT_PARAM_TO_INPUT_FIELD
from gateway.errors import BadUserInput
from gateway.ucd.names import CUSTOM, EVENTS_WITH_REQUIRED_PARAMS, PARAM_TYPES, REQUIRED_PARAMS
from gateway.ucd.rules import (
    CUSTOM_NAME,
    EMAIL,
    EVENT_NAME,
    IDENTIFIER_VALUE,
    MAX_IDENTIFIER_VALUE,
    PHONE_NUMBER,
    is_blocked,
    normalise_email,
)

__all__ = [
    "Problem",
    "check_delete_item",
    "check_identifier",
    "check_key",
    "check_upsert_item",
    "raise_first",
]


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


def raise_first(problems: Iterable[Problem]) -> None:
    """Raise BAD_USER_INPUT for the first problem, if any."""
    for problem in problems:
        raise BadUserInput(problem.message, path=problem.path)


def usable(value: str | None, *, email: bool = False) -> bool:
    """False for absent and blocked identifier values, which the UCD ignores (§4.2)."""
    return value is not None and not is_blocked(value, email=email)


#: Never echoes the value: it may be a megabyte long or hold a line break.
IDENTIFIER_VALUE_MESSAGE = (
    f"invalid identifier value: at most {MAX_IDENTIFIER_VALUE} characters, no control characters"
)


def _identifier_value(value: str, path: str) -> list[Problem]:
    if IDENTIFIER_VALUE.check(value):
        return []
    return [Problem(path, IDENTIFIER_VALUE_MESSAGE)]


def _email(value: str, path: str) -> list[Problem]:
    # The UCD's format first, with its message; then the gateway's bound, which only an
    # address that passed the format can still break ("a\tb@x.io", 2,000 characters).
    # Both on the address as the UCD uses it: trimmed (" a@b.io\t" is fine) and lower-cased.
    if EMAIL.check(value):
        return _identifier_value(normalise_email(value), path)
    return [Problem(path, f"not a valid email address: {value}")]


def _phone(value: str, path: str) -> list[Problem]:
    if PHONE_NUMBER.check(value):
        return []
    return [Problem(path, f"user has an invalid phone number: {value}")]


def _custom_name(name: str, path: str) -> list[Problem]:
    if CUSTOM_NAME.check(name):
        return []
    return [Problem(path, f"invalid custom name: {name}")]


def check_key(key: UserKey, path: str) -> list[Problem]:
    """A key must name somebody, with well-formed identifiers (§3.1.3 identity rules)."""
    problems: list[Problem] = []
    named = False
    if key.insider_id is not None:
        if key.insider_id == "":
            problems.append(Problem(f"{path}.insiderId", "insiderId must not be empty"))
        else:
            problems += _identifier_value(key.insider_id, f"{path}.insiderId")
            named = True
    if usable(key.email, email=True):
        assert key.email is not None
        problems += _email(key.email, f"{path}.email")
        named = True
    if usable(key.phone_number):
        assert key.phone_number is not None
        problems += _phone(key.phone_number, f"{path}.phoneNumber")
        named = True
    if usable(key.uuid):
        assert key.uuid is not None
        problems += _identifier_value(key.uuid, f"{path}.uuid")
        named = True
    for k, custom in enumerate(key.custom or ()):
        problems += _custom_name(custom.name, f"{path}.custom.{k}.name")
        if usable(custom.value):
            problems += _identifier_value(custom.value, f"{path}.custom.{k}.value")
            named = True
    if not named and not problems:
        problems.append(
            Problem(path, "the key must give an insiderId or at least one identifier value")
        )
    return problems


def check_identifier(identifier: IdentifierInput, path: str) -> list[Problem]:
    """Exactly one usable identifier value, well formed (E5/E6 checks 1-4, §3.5.2)."""
    # @oneOf is enforced by GraphQL validation (graphql-core); this is the defence in depth
    # for the values themselves.
    given = [
        (name, value)
        for name, value in (
            ("email", identifier.email),
            ("phoneNumber", identifier.phone_number),
            ("uuid", identifier.uuid),
        )
        if isinstance(value, str)
    ]
    custom = identifier.custom
    if len(given) + (custom is not None) != 1:
        return [Problem(path, "exactly one identifier must be given")]
    if custom is not None:
        problems = _custom_name(custom.name, f"{path}.custom.name")
        if not usable(custom.value):
            problems.append(
                Problem(f"{path}.custom.value", f"not a usable identifier value: {custom.value}")
            )
        else:
            problems += _identifier_value(custom.value, f"{path}.custom.value")
        return problems
    name, value = given[0]
    if not usable(value, email=name == "email"):
        return [Problem(f"{path}.{name}", f"not a usable identifier value: {value}")]
    if name == "email":
        return _email(value, f"{path}.email")
    if name == "phoneNumber":
        return _phone(value, f"{path}.phoneNumber")
    return _identifier_value(value, f"{path}.{name}")


def _check_json_object(value: Any, path: str, what: str) -> list[Problem]:
    if value is None or isinstance(value, Mapping):
        return []
    return [Problem(path, f"{what} must be an object")]


def _param_type_fits(kind: str, value: Any) -> bool:
    """Whether ``value`` is of the §4.8.2 type ``kind``; False for a type it does not know.

    An unknown type fits nothing, so a type added to PARAM_TYPES without a case here is
    refused loudly in tests rather than checked as some other type.
    """
    match kind:
        case "string":
            return isinstance(value, str)
        case "number":
            return not isinstance(value, bool) and isinstance(value, int | float)
        case "integer":
            return (
                not isinstance(value, bool)
                and isinstance(value, int | float)
                and float(value).is_integer()
            )
        case "string_array":
            return isinstance(value, list) and all(isinstance(v, str) for v in value)
        case _:
            return False


def _check_param_types(params: Mapping[str, Any], path: str) -> list[Problem]:
    problems: list[Problem] = []
    for name, value in params.items():
        where = f"{path}.{name}"
        kind = PARAM_TYPES.get(name)
        if name == CUSTOM:
            problems.append(Problem(where, "custom parameters go in the event's custom field"))
        elif kind is not None and not _param_type_fits(kind, value):
            problems.append(Problem(where, f"{name} must be {kind}"))
    return problems


def _check_event(event: EventInput, path: str) -> list[Problem]:
    problems: list[Problem] = []
    if not EVENT_NAME.check(event.name):
        problems.append(Problem(f"{path}.name", f"invalid event name: {event.name}"))
    problems += _check_json_object(event.params, f"{path}.params", "params")
    problems += _check_json_object(event.custom, f"{path}.custom", "custom")
    params: Mapping[str, Any] = event.params if isinstance(event.params, Mapping) else {}
    problems += _check_param_types(params, f"{path}.params")
    custom: Mapping[str, Any] = event.custom if isinstance(event.custom, Mapping) else {}
    for name in custom:
        problems += _custom_name(name, f"{path}.custom.{name}")
    if event.name in EVENTS_WITH_REQUIRED_PARAMS:
        for param in REQUIRED_PARAMS:
            typed = getattr(event, param)
            if typed is None and params.get(param) is None:
                problems.append(
                    Problem(
                        f"{path}.{EVENT_PARAM_TO_INPUT_FIELD[param]}",
                        f"{param} parameter is required on {event.name} event",
                    )
                )
    return problems


def _supported_custom_value(value: Any) -> bool:
    """§3.1.3: string, number, boolean, string array or number array."""
    if isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list):
        strings = all(isinstance(v, str) for v in value)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        return strings or numbers
    return False


def check_upsert_item(item: UserUpsertInput, path: str) -> list[Problem]:
    problems = check_key(item.key, f"{path}.key")
    attributes = item.attributes
    has_attributes = False
    if attributes is not None:
        if attributes.email is not None:
            problems += _email(attributes.email, f"{path}.attributes.email")
        if attributes.phone_number is not None:
            problems += _phone(attributes.phone_number, f"{path}.attributes.phoneNumber")
        for k, custom in enumerate(attributes.custom or ()):
            problems += _custom_name(custom.name, f"{path}.attributes.custom.{k}.name")
            if custom.value is not None and not _supported_custom_value(custom.value):
                problems.append(
                    Problem(
                        f"{path}.attributes.custom.{k}.value",
                        f"{custom.name} must be string, number, boolean, string array or number "
                        f"array",
                    )
                )
        has_attributes = any(
            getattr(attributes, name) is not None for name in vars(attributes) if name != "custom"
        ) or any(c.value is not None for c in attributes.custom or ())
    for m, event in enumerate(item.events or ()):
        problems += _check_event(event, f"{path}.events.{m}")
    if not has_attributes and not item.events:
        problems.append(Problem(path, "either attributes or events must be specified"))
    return problems


def check_delete_item(item: DeleteAttributesInput, path: str) -> list[Problem]:
    problems = check_key(item.key, f"{path}.key")
    for k, name in enumerate(item.custom_names or ()):
        problems += _custom_name(name, f"{path}.customNames.{k}")
    if not (item.names or item.custom_names or item.values):
        problems.append(
            Problem(path, "at least one of names, customNames or values must be specified")
        )
    return problems
