"""Mutation payloads whose ``user`` reads the user back after the change.

The mutation stores *how* to find the user afterwards (``_ref``, None when it cannot be
found any more); the ``user`` resolver reads it with the payload's own selection pushed
down, so a payload whose ``user`` is not selected costs no read at all.
"""

from __future__ import annotations

from typing import Any

import strawberry

from gateway.api.context import Context
from gateway.api.described import described_field
from gateway.api.reading import load_user, selection_of
from gateway.api.types import User
from gateway.errors import GatewayError
from gateway.ucd.requests import UserRef

__all__ = [
    "DeleteIdentifierPayload",
    "DeletePiiPayload",
    "DeleteUserPayload",
    "UpdateIdentifierPayload",
]


async def _read_back(info: strawberry.Info[Context, Any], ref: UserRef | None) -> User | None:
    if ref is None:
        return None
    # Outside the try: bad arguments of the payload's own selection (events from > to)
    # are the caller's to fix and are reported as BAD_USER_INPUT, not swallowed.
    need = selection_of(info).need_for(ref)
    try:
        return await load_user(info, ref, need)
    except GatewayError:
        # The change is done; a failed read-back is "could not be read back" (null),
        # not a failure of the mutation the caller must not retry blindly.
        return None


@strawberry.type
class DeletePiiPayload:
    ok: bool
    _ref: strawberry.Private[UserRef | None]

    @described_field("The user as it is after the deletion (null if it could not be read back).")
    async def user(self, info: strawberry.Info[Context, Any]) -> User | None:
        return await _read_back(info, self._ref)


@strawberry.type
class UpdateIdentifierPayload:
    ok: bool
    _ref: strawberry.Private[UserRef | None]

    @strawberry.field
    async def user(self, info: strawberry.Info[Context, Any]) -> User | None:
        return await _read_back(info, self._ref)


@strawberry.type
class DeleteIdentifierPayload:
    ok: bool
    _ref: strawberry.Private[UserRef | None]

    @strawberry.field
    async def user(self, info: strawberry.Info[Context, Any]) -> User | None:
        return await _read_back(info, self._ref)


@strawberry.type
class DeleteUserPayload:
    ok: bool
