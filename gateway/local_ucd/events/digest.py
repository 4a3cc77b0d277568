"""The identity of an event (§4.8.3): a 16-byte BLAKE2b of its canonical JSON.

Canonical JSON = ``[name, ts_us, {default params…, "custom": {…}, "source": s}]`` with keys
sorted at every level, compact, numbers by value (§2.4): ``1.0`` digests as ``1``, so an
event re-sent with ``"quantity": 2.0`` is a duplicate of the one sent with ``2``.
Stored digests are compared with new ones, so these bytes must never change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["dedupe_digest", "plain_values"]

# orjson's integer range; an integral float outside it keeps its float form in the digest.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _canonical(value: Any) -> Any:
    """Numbers by value (§2.4): an integral float becomes an int, so ``1.0`` digests as ``1``.

    Returns ``value`` itself when nothing changes (the common case), so the digest of an
    ordinary event costs one pass over its values and no copies.
    """
    kind = type(value)
    if kind is float:
        if value.is_integer() and _INT_MIN <= value <= _INT_MAX:
            return int(value)
        return value
    if kind is dict:
        return _canonical_map(value)
    if kind is list:
        changed: list[Any] | None = None
        for index, item in enumerate(value):
            item_kind = type(item)
            if item_kind is str or item_kind is int or item_kind is bool or item is None:
                continue
            new = _canonical(item)
            if new is not item:
                if changed is None:
                    changed = list(value)
                changed[index] = new
        return value if changed is None else changed
    return value


def _canonical_map(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    changed: dict[str, Any] | None = None
    for key, item in mapping.items():
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        new = _canonical(item)
        if new is not item:
            if changed is None:
                changed = dict(mapping)
            changed[key] = new
    return mapping if changed is None else changed


def plain_values(mapping: Mapping[str, Any]) -> bool:
    """No value needs canonicalising: no integral float, and no container except a list
    of strings (``taxonomy``)."""
    for value in mapping.values():
        kind = type(value)
        if kind is float:
            if value.is_integer():
                return False
        elif kind is dict or (kind is list and not all(type(item) is str for item in value)):
            return False
    return True


def dedupe_digest(
    name: str,
    ts_us: int,
    params: Mapping[str, Any],
    custom: Mapping[str, Any],
    source: str,
    *,
    plain: bool = False,
) -> bytes:
    """The digest of one event. ``plain`` says the caller saw no value that canonicalising
    would change (see :func:`plain_values`), which skips that pass."""
    if plain:
        body = {**params, "custom": custom, "source": source}
    else:
        body = {**_canonical_map(params), "custom": _canonical_map(custom), "source": source}
    text = orjson.dumps([name, ts_us, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(text, digest_size=16).digest()
