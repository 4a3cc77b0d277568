"""JSON values as the UCD compares them: numbers by value, booleans apart (§2.4).

Python's own rules are close but wrong in two places: ``True == 1`` and ``isinstance(True,
int)`` both hold, while in JSON a boolean is never a number. Every comparison of request
values with stored ones goes through here::

    json_equal(1, 1.0)          -> True
    json_equal(True, 1)         -> False
    json_equal([1, {"a": 2.0}], [1.0, {"a": 2}])  -> True

Values are what ``orjson.loads`` gives (dict, list, str, int, float, bool, None), so exact
``type()`` checks are enough. Two hot paths keep their own inline form of the same rule
and say so: E1's parameter checks (:mod:`gateway.local_ucd.events.params`) and the event
digest's canonical numbers (:mod:`gateway.local_ucd.events.digest`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_integer", "is_number", "json_equal"]


def is_number(value: Any) -> bool:
    """A JSON number (§4.7.1 ``number``); booleans are not numbers."""
    kind = type(value)
    return kind is int or kind is float


def is_integer(value: Any) -> bool:
    """A JSON number with an integral value (§4.7.1 ``integer``): ``2`` and ``2.0``."""
    kind = type(value)
    return kind is int or (kind is float and value.is_integer())


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values, numbers by value (``1`` equals ``1.0``, ``true`` no number)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if is_number(left) and is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(v, right[k]) for k, v in left.items())
    return type(left) is type(right) and bool(left == right)
