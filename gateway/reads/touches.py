"""What a write may change, for the profile cache's invalidation (``cache.Touch``).

Exact where the write says exactly what it changes (an upsert's attributes and event
names, an attribute delete's names), everything where it may change who is who: an
upsert naming several identifiers may merge users (§4.4), one writing an identifier
attribute attaches an identifier, and identifier updates and deletes move them.
"""

from __future__ import annotations

from gateway.reads.cache import Touch
from gateway.ucd.names import EMAIL, PHONE_NUMBER, UUID, canonical_read_name, custom_read_name
from gateway.ucd.requests import AttributeDeleteUser, UpsertUser, UserRef

__all__ = ["identity_touch", "touch_of_delete", "touch_of_upsert"]

_IDENTIFIER_ATTRIBUTES = frozenset({EMAIL, PHONE_NUMBER, UUID})


def _several_identifiers(ref: UserRef) -> bool:
    given = [ref.insider_id, ref.email, ref.phone_number, ref.uuid, *ref.custom]
    return sum(value is not None for value in given) > 1


def touch_of_upsert(user: UpsertUser) -> Touch:
    """An E1 user: its attributes and event names, or everything when it may merge
    users or attach an identifier."""
    names = {canonical_read_name(name) for name in user.attributes}
    if _several_identifiers(user.user) or names & _IDENTIFIER_ATTRIBUTES:
        return identity_touch(user.user)
    names |= {custom_read_name(name) for name in user.custom_attributes}
    return Touch(
        (user.user,),
        attributes=frozenset(names),
        events=frozenset(event.event_name for event in user.events),
    )


def touch_of_delete(user: AttributeDeleteUser) -> Touch:
    """An E4 user: the attributes it deletes (whole or values out of arrays)."""
    names = {canonical_read_name(name) for name in (*user.whole, *user.partial)}
    if names & _IDENTIFIER_ATTRIBUTES:
        return identity_touch(user.user)
    names |= {custom_read_name(name) for name in (*user.custom_whole, *user.custom_partial)}
    return Touch((user.user,), attributes=frozenset(names))


def identity_touch(*refs: UserRef) -> Touch:
    """Everything of every user ``refs`` name (identifier changes, merges)."""
    return Touch(tuple(refs), everything=True)
