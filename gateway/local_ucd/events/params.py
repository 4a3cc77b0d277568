"""Event parameters (§4.8.2): the typed default parameters and their checks.

Root keys of ``event_params`` are default parameters; a few are type-checked
(:data:`PARAM_TYPES`), every other key takes any JSON value. ``source`` and ``custom``
are not stored with them: ``source`` becomes its own column, ``custom`` holds the custom
parameters (names of 1 to 128 characters). [LOCAL] A null parameter counts as absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.local_ucd.events.digest import plain_values
from gateway.local_ucd.http import render_value
from gateway.ucd.names import EVENTS_WITH_REQUIRED_PARAMS, PARAM_TYPES, REQUIRED_PARAMS
from gateway.ucd.rules import CUSTOM_NAME

__all__ = [
    "PARAM_TYPES",
    "REQUIRED_PARAMS",
    "REQUIRING_EVENTS",
    "custom_names_ok",
    "default_params",
    "fast_params",
    "report_custom_names",
    "report_default_params",
]

#: Type-checked default parameters (§4.8.2; every other root key takes any JSON value), and
#: the parameters ``purchase`` and ``cart_page_view`` require, in the order of the messages:
#: the contract's vocabulary, shared with the gateway's input checks (gateway.ucd.names).
REQUIRING_EVENTS: Final = EVENTS_WITH_REQUIRED_PARAMS


def _param_type_ok(value: Any, type_name: str) -> bool:
    # json_values.is_number/is_integer written inline: E1 checks millions of parameters.
    kind = type(value)
    if type_name == "string":
        return kind is str
    if type_name == "number":
        return kind is int or kind is float
    if type_name == "integer":
        return kind is int or (kind is float and value.is_integer())
    # string_array
    return kind is list and all(type(item) is str for item in value)


def custom_names_ok(custom: Mapping[str, Any]) -> bool:
    return all(CUSTOM_NAME.check(key) for key in custom)


def report_custom_names(
    custom: Mapping[str, Any], where: str, errors: list[tuple[str, str]]
) -> None:
    for key in custom:
        if not CUSTOM_NAME.check(key):
            errors.append((f"{where}.*.{CUSTOM_NAME.key}", f"invalid custom name: {key}"))


_STRING_PARAMS = frozenset(key for key, kind in PARAM_TYPES.items() if kind == "string")
_NUMBER_PARAMS = frozenset(key for key, kind in PARAM_TYPES.items() if kind == "number")
_OTHER_TYPED_PARAMS = frozenset(PARAM_TYPES) - _STRING_PARAMS - _NUMBER_PARAMS


def default_params(event_params: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The default parameters to store and the source, or ``None`` if a type is wrong.

    The stored parameters are those at the root of ``event_params`` without ``custom``
    and ``source``. Set operations pick the typed keys, so untyped keys cost nothing here.
    """
    source = None
    if "custom" in event_params or "source" in event_params:
        params = dict(event_params)
        params.pop("custom", None)
        source = params.pop("source", None)
        if source is not None and type(source) is not str:
            return None
    else:
        params = event_params  # not changed below: no copy needed
    if None in params.values():
        params = {key: value for key, value in params.items() if value is not None}
    keys = params.keys()
    for key in keys & _STRING_PARAMS:
        if type(params[key]) is not str:
            return None
    for key in keys & _NUMBER_PARAMS:
        kind = type(params[key])
        if kind is not int and kind is not float:
            return None
    for key in keys & _OTHER_TYPED_PARAMS:
        if not _param_type_ok(params[key], PARAM_TYPES[key]):
            return None
    return params, source or "api"


def report_default_params(
    event_params: dict[str, Any], index: int, errors: list[tuple[str, str]]
) -> None:
    """The type errors of the default parameters, in the order they were sent."""
    for key, value in event_params.items():
        type_name = PARAM_TYPES.get(key)
        if type_name is not None and value is not None and not _param_type_ok(value, type_name):
            errors.append(
                (
                    f"events.{index}.event_params.{key}.type({type_name})",
                    f"{key} must be {type_name}: {render_value(value)}",
                )
            )


# The keys whose value of a given type fails the checks (or, for "source" and "custom",
# is not a parameter): the fast path leaves them to the full checks, which report.
_NO_STR = frozenset(PARAM_TYPES) - _STRING_PARAMS | {"custom", "source"}
_NO_NUMBER = _STRING_PARAMS | {"taxonomy", "custom"}
_NO_OTHER = frozenset(PARAM_TYPES) | {"custom"}


def fast_params(
    event_params: dict[str, Any],
) -> tuple[dict[str, Any], str, dict[str, Any], bool] | None:
    """``(params, source, custom, plain)`` of a valid ``event_params`` in one pass.

    E1's hot path: equals :func:`default_params` plus ``event_params.get("custom") or {}``,
    and ``plain`` is :func:`gateway.local_ucd.events.digest.plain_values` of both. ``None``
    when something is wrong (a type, a custom name): the full checks then report it.
    """
    params: dict[str, Any] = {}
    source = "api"
    custom: dict[str, Any] = {}
    plain = True
    for key, value in event_params.items():
        kind = type(value)
        if kind is str:
            if key in _NO_STR:
                if key != "source":
                    return None
                source = value or "api"
                continue
        elif kind is int:
            if key in _NO_NUMBER:
                return None
        elif kind is float:
            if key in _NO_NUMBER:
                return None
            if value.is_integer():
                plain = False  # 2.0 digests as 2
            elif key == "quantity":
                return None
        elif value is None:
            continue
        elif kind is dict:
            if key == "custom":
                if not custom_names_ok(value):
                    return None
                custom = value
                plain = plain and plain_values(value)
                continue
            if key in _NO_OTHER:
                return None
            plain = False
        elif kind is list:
            if key in _NO_OTHER and key != "taxonomy":
                return None
            if not all(type(item) is str for item in value):
                if key == "taxonomy":
                    return None
                plain = False
        elif key in _NO_OTHER:  # a boolean
            return None
        params[key] = value
    return params, source, custom, plain
