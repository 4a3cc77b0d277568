"""The UCD's answer envelopes: E1/E4's per-user data envelope and the error bodies.

E1 and E4 answer ``{"data": {"successful": {"count": n}, "fail": {"count": m, "errors":
{"users.<N>.<rule key>": [messages]}}}}`` (§3.1.3, §3.4.3); ``split`` cuts that into one
``UserOutcome`` per user of the request. Every other refusal is an error body, Go style
``{"error": "..."}`` or ``{"success": false, "message": "..."}`` (§2.5): ``error_text``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from gateway.errors import UpstreamError

__all__ = ["DataEnvelope", "UserOutcome", "error_text"]

#: Per-user error keys of the data envelope: ``users.<N>.<rest>`` (§3.1.3).
_USER_KEY_RE: Final = re.compile(r"users\.([0-9]+)\.(.+)", re.DOTALL)


@dataclass(frozen=True)
class UserOutcome:
    """One user's result in an E1/E4 call.

    ``errors`` maps the UCD's rule key *without* the ``users.N.`` prefix
    (``identifiers.*.regexp(^.+@.+\\..+$)``) to its messages; empty means success.
    """

    errors: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class DataEnvelope:
    """The per-user outcome of E1/E4: ``{"data": {"successful": {...}, "fail": {...}}}``.

    ``errors`` maps the UCD's rule keys (``users.1.identifiers.*.regexp(...)``) to its
    messages. E4 may answer ``{}`` (§3.4.4), which parses as all zero.
    """

    successful_count: int
    fail_count: int
    errors: dict[str, list[str]]

    @classmethod
    def from_wire(cls, answer: Any) -> DataEnvelope:
        """Parse E1/E4's data envelope; ``{}`` (E4, §3.4.4) means nothing to report."""
        if answer == {}:
            return cls(successful_count=0, fail_count=0, errors={})
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise UpstreamError("the UCD sent a body without a data envelope", status=200)
        successful = data.get("successful") or {}
        fail = data.get("fail") or {}
        if not isinstance(successful, dict) or not isinstance(fail, dict):
            raise UpstreamError("the UCD sent a malformed data envelope", status=200)
        errors = fail.get("errors") or {}
        ok_count = successful.get("count", 0)
        fail_count = fail.get("count", 0)
        if (
            not isinstance(ok_count, int)
            or not isinstance(fail_count, int)
            or not isinstance(errors, dict)
            or not all(
                isinstance(messages, list) and all(isinstance(m, str) for m in messages)
                for messages in errors.values()
            )
        ):
            raise UpstreamError("the UCD sent a malformed data envelope", status=200)
        return cls(successful_count=ok_count, fail_count=fail_count, errors=errors)

    def split(self, count: int) -> list[UserOutcome]:
        """Cut the envelope into per-user outcomes, by the ``N`` of each error key.

        >>> env = DataEnvelope(1, 1, {"users.1.identifiers.*.regexp(x)": ["not a valid email"]})
        >>> [o.ok for o in env.split(2)]
        [True, False]
        """
        per_user: list[dict[str, list[str]]] = [{} for _ in range(count)]
        for key, messages in self.errors.items():
            match = _USER_KEY_RE.fullmatch(key)
            if match is None or int(match.group(1)) >= count:
                # Not a per-user key: nothing in §3.1.5 produces one; ignore rather than guess.
                continue
            per_user[int(match.group(1))].setdefault(match.group(2), []).extend(messages)
        return [UserOutcome(errors) for errors in per_user]


def error_text(content: bytes) -> str | None:
    """The text of a Go-style ``{"error"}`` or a ``{"success": false, "message"}`` body."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, dict):
        for key in ("error", "message"):
            value = body.get(key)
            if isinstance(value, str):
                return value
    return None
