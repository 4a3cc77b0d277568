"""Reading users for a field: its selection pushed down, through the request's loader."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Any

import strawberry

from gateway.api.audit_trail import note_pii_read
from gateway.api.authorization import restrict
from gateway.api.context import Context
from gateway.api.selection import FieldScope, UserSelection, user_selection
from gateway.api.types import User
from gateway.reads.need import ProfileNeed
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.requests import UserRef

__all__ = ["load_user", "read_user", "read_users", "selection_of"]

Info = strawberry.Info[Context, Any]


def selection_of(info: Info) -> UserSelection:
    """The need of the ``User`` this field returns, without the PII the caller may not
    see: that is never asked of the UCD (gateway/api/authorization.py)."""
    return restrict(
        user_selection(FieldScope.of(info), now=info.context.now), info.context.withheld
    )


def _user(profile: ProfileAnswer | None, ref: UserRef, info: Info) -> User | None:
    if profile is None:
        return None
    return User.from_ucd(
        profile,
        custom_identifiers=[name for name, _ in ref.custom],
        now=info.context.now,
        withheld=info.context.withheld,
    )


async def read_user(info: Info, ref: UserRef, *, fresh: bool = False) -> User | None:
    need = selection_of(info).need_for(ref)
    return await load_user(info, ref, replace(need, fresh=True) if fresh else need)


async def load_user(info: Info, ref: UserRef, need: ProfileNeed) -> User | None:
    """The user ``ref`` names, read through the request's loader with ``need``."""
    profile = await info.context.profiles.load(ref, need)
    if profile is not None and info.context.audit is not None:
        note_pii_read(info.context, profile, need)
    return _user(profile, ref, info)


def read_users(info: Info, refs: Sequence[UserRef]) -> list[Awaitable[User | None]]:
    """One awaitable per key, in key order; the loader makes one call per distinct user.

    A list of awaitables rather than an awaited list: graphql-core completes each item
    on its own, so a UCD call that fails for one user nulls that item only and reports
    the error at ``["users", i]``; the other users still resolve. The loads all start
    in the same tick, so the loader still batches them (repeats share one call).
    """
    selection = selection_of(info)
    return [load_user(info, ref, selection.need_for(ref)) for ref in refs]
