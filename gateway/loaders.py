"""Profile reads: what one operation needs from a user, merged into as few UCD calls as possible.

The GraphQL layer (``gateway.api.selection``) turns a selection into a ``ProfileNeed``;
resolvers then ask the per-request ``ProfileLoader`` for ``(UserRef, ProfileNeed)``.
The loader groups the keys of one tick by user, merges their needs into one E2 body
per user, and sends the distinct users concurrently (the ``UcdClient``'s semaphore is
the concurrency bound). Every resolver gets the merged answer and filters its own part
out of it (events by window and ``last``; attributes by name), so merging never has to
split an answer back up.

Why one window per user: an E2 request has a single ``start_date``/``end_date`` for all
its wanted events (shared/ucd-rest-api.md §3.2.1). Several ``events(...)`` selections
of one user are therefore merged into the *hull* of their windows. The alternative, one
call per disjoint window, costs a UCD call and ``1 + names`` quota units per window
(§2.6); the hull may fetch events in the gap between two windows, which the resolvers
drop again. We take the hull: one call per user per operation, always.

Why ``last`` can travel as ``limit_per_source`` (§3.2.4: after ordering newest first, at
most N events are kept per distinct ``source``): the newest N events of a list are always
among the newest N of each source, since an event with N newer events of its own source
before it has N newer events overall. So a wanted item may carry ``limit_per_source = N``
when every selection of that event name for the user has a ``last`` (N is the largest)
and all of them use exactly the merged request's window. Were a window narrower than the
hull, the newest N of the hull could all lie outside it: e.g. ``last: 1`` over January
merged with a selection of February gets February's newest event only. One thing the
argument needs besides: the resolvers must not drop any of the newest N of a source. The
UCD's bounds are whole seconds and the resolvers' are exact instants, so an event in the
last second of the window but after the selection's ``to`` comes back and is dropped;
``limits_may_hide_events`` spots that case in an answer, and the read is sent again
without limits (``ProfileReads``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from aiodataloader import DataLoader

if TYPE_CHECKING:
    from gateway.coalesce import ProfileReads

__all__ = [
    "ALL_ATTRIBUTES",
    "BLOCKED_VALUES",
    "READ_NAME_ALIASES",
    "ProfileLoader",
    "ProfileNeed",
    "UserRef",
    "canonical_read_name",
    "limits_may_hide_events",
    "profile_body",
]

#: Identifier values the UCD silently ignores (§4.2): a key made only of these names nobody.
BLOCKED_VALUES: Final = frozenset({"undefined", "anonymous", "0", "1", "null", ""})

#: Read-name aliases the UCD resolves (§4.7.1 "Read names"); the answer uses the target.
#: The gateway resolves them itself so that ``attribute(name: "locale")`` finds the ``lo`` key.
READ_NAME_ALIASES: Final[Mapping[str, str]] = {
    "gdpr_optin": "gdpr",
    "locale": "lo",
    "list_id": "static_segment_id",
    "em": "email",
    "pn": "phone_number",
}

#: Marker for "every attribute" (the UCD's ``"*"``).
ALL_ATTRIBUTES: Final = "*"


def canonical_read_name(name: str, *, custom: bool = False) -> str:
    """The key the UCD answers under for a requested attribute name.

    >>> canonical_read_name("gdpr_optin"), canonical_read_name("tier", custom=True)
    ('gdpr', 'c_tier')
    """
    if custom:
        return f"c_{name}"
    return READ_NAME_ALIASES.get(name, name)


def normalise_email(value: str) -> str:
    """Emails are trimmed and lower-cased everywhere by the UCD (§4.2); so are our keys."""
    return value.strip().lower()


@dataclass(frozen=True)
class UserRef:
    """One user as the caller named it: hashable, with the email normalised.

    Two keys that the UCD would look up identically compare equal, so ``users(keys)``
    with repeated keys costs one call per distinct user.
    """

    insider_id: str | None = None
    email: str | None = None
    phone_number: str | None = None
    uuid: str | None = None
    custom: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls,
        *,
        insider_id: str | None = None,
        email: str | None = None,
        phone_number: str | None = None,
        uuid: str | None = None,
        custom: Iterable[tuple[str, str]] = (),
    ) -> UserRef:
        return cls(
            insider_id=insider_id,
            email=normalise_email(email) if email is not None else None,
            phone_number=phone_number,
            uuid=uuid,
            custom=tuple(sorted(custom)),
        )

    def identifiers(self) -> dict[str, Any]:
        """The UCD's ``identifiers`` object (empty when the key is an insider_id only)."""
        ids: dict[str, Any] = {}
        if self.email is not None:
            ids["email"] = self.email
        if self.phone_number is not None:
            ids["phone_number"] = self.phone_number
        if self.uuid is not None:
            ids["uuid"] = self.uuid
        if self.custom:
            ids["custom"] = dict(self.custom)
        return ids

    def body(self) -> dict[str, Any]:
        """``{"insider_id": ...}`` and/or ``{"identifiers": {...}}`` for E2, E4, E8, E9."""
        body: dict[str, Any] = {}
        if self.insider_id is not None:
            body["insider_id"] = self.insider_id
        ids = self.identifiers()
        if ids:
            body["identifiers"] = ids
        return body

    def has_non_pii_identifier(self) -> bool:
        """True when the key still finds the user after its PII is deleted (§3.7.2)."""
        return self.insider_id is not None or self.uuid is not None or bool(self.custom)


#: One event name's bound: the largest ``last`` of its selections and their common window.
Last = tuple[str, int, tuple[int, int]]


@dataclass(frozen=True)
class ProfileNeed:
    """What a selection needs from one user's profile, in UCD names.

    ``attributes`` holds read names (``email``, ``gdpr``, ``c_tier``) or is ``"*"``;
    ``events`` maps each wanted event name to the parameters wanted (UCD names,
    ``c_`` for custom ones), as sorted tuples so the need is hashable and its body
    canonical; ``window`` is the inclusive ``(start_date, end_date)`` in epoch seconds.
    ``lasts`` holds ``(name, last, window)`` for the event names whose selections *all*
    have a ``last`` and one common window (``last`` is their largest); ``limits`` says
    which of them may be sent as ``limit_per_source`` (see the module doc).
    """

    attributes: frozenset[str] | str = frozenset()
    events: tuple[tuple[str, frozenset[str]], ...] = ()
    window: tuple[int, int] | None = None
    lasts: tuple[Last, ...] = ()

    @property
    def all_attributes(self) -> bool:
        return self.attributes == ALL_ATTRIBUTES

    def merge(self, other: ProfileNeed) -> ProfileNeed:
        """The smallest need that covers both (window: the hull, see the module doc)."""
        attributes: frozenset[str] | str
        if self.all_attributes or other.all_attributes:
            attributes = ALL_ATTRIBUTES
        else:
            assert isinstance(self.attributes, frozenset)
            assert isinstance(other.attributes, frozenset)
            attributes = self.attributes | other.attributes
        events: dict[str, frozenset[str]] = dict(self.events)
        for name, params in other.events:
            events[name] = events.get(name, frozenset()) | params
        window = self.window
        if other.window is not None:
            window = (
                other.window
                if window is None
                else (min(window[0], other.window[0]), max(window[1], other.window[1]))
            )
        return ProfileNeed(
            attributes, tuple(sorted(events.items())), window, _merge_lasts(self, other)
        )

    def limits(self) -> dict[str, int]:
        """``limit_per_source`` per event name: its ``last`` where that loses nothing.

        A name's bound counts only while its selections' common window *is* the request's
        window (the module doc says why). Example: ``events(names: ["purchase"], last: 5)``
        and ``events(names: ["purchase", "view"], last: 20)`` over the same days give
        ``{"purchase": 20, "view": 20}``; add ``events(names: ["view"])`` and ``view``
        drops out; add a selection whose window widens the hull and both drop out.
        """
        return {
            name: last for name, last, window in self.lasts if window == self.window and last > 0
        }

    def covers(self, other: ProfileNeed) -> bool:
        """True when an answer to ``self`` holds everything ``other`` asks for."""
        if not self.all_attributes:
            if other.all_attributes:
                return False
            assert isinstance(self.attributes, frozenset)
            assert isinstance(other.attributes, frozenset)
            if not other.attributes <= self.attributes:
                return False
        if not other.events:
            return True
        if self.window is None or other.window is None:
            return False
        if not (self.window[0] <= other.window[0] and other.window[1] <= self.window[1]):
            return False
        mine = dict(self.events)
        if not all(name in mine and params <= mine[name] for name, params in other.events):
            return False
        limits = self.limits()
        if not limits:
            return True
        # A limited list holds what ``other`` needs only when ``other`` is limited the same
        # way at most as tightly: same window, a ``last`` no larger. An unlimited need, or
        # one with a narrower window, may need events the limit cut.
        theirs = other.limits() if other.window == self.window else {}
        return all(
            name not in limits or theirs.get(name, limits[name] + 1) <= limits[name]
            for name, _ in other.events
        )

    def unlimited(self) -> ProfileNeed:
        """The same need without any ``limit_per_source``."""
        return replace(self, lasts=())

    @staticmethod
    def merge_all(needs: Iterable[ProfileNeed]) -> ProfileNeed:
        merged = ProfileNeed()
        for need in needs:
            merged = merged.merge(need)
        return merged


def _merge_lasts(a: ProfileNeed, b: ProfileNeed) -> tuple[Last, ...]:
    """The bounds of ``a.merge(b)``: a name keeps one only if every selection of it had
    one, all with the same window; the bound is the largest ``last``."""
    bounded: dict[str, tuple[int, tuple[int, int]]] = {}
    unbounded: set[str] = set()
    for need in (a, b):
        own = {name: (last, window) for name, last, window in need.lasts}
        for name, _ in need.events:
            if name in unbounded:
                continue
            mine = own.get(name)
            seen = bounded.get(name)
            if mine is None or (seen is not None and seen[1] != mine[1]):
                unbounded.add(name)
                bounded.pop(name, None)
            elif seen is None:
                bounded[name] = mine
            else:
                bounded[name] = (max(seen[0], mine[0]), mine[1])
    return tuple((name, last, window) for name, (last, window) in sorted(bounded.items()))


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)


def _epoch_second(created_date: object) -> int | None:
    """floor(epoch seconds) of an event's ``created_date``; None when it is no RFC 3339 time."""
    if not isinstance(created_date, str):
        return None
    try:
        stamp = datetime.fromisoformat(created_date)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return (stamp - _EPOCH) // _SECOND


def limits_may_hide_events(need: ProfileNeed, answer: Mapping[str, Any]) -> bool:
    """True when a ``limit_per_source`` of ``need`` may have cut events a resolver needs.

    The UCD keeps an event when ``floor(its seconds) <= end_date``; a resolver keeps it
    when it is not after the selection's exact ``to``. So an event in the window's last
    second may come back and be dropped again, and if its source's list was full (as
    long as the limit), the event the limit cut in its place is missing. Example:
    ``to: "2025-01-10T10:00:00Z", last: 1`` with events at 10:00:00.5 and 09:59:59: the UCD
    answers only the first, the resolver drops it and would answer nothing instead of
    09:59:59. An event whose time does not parse is dropped by the resolvers too, so it
    counts the same way. Only lists that reached their limit matter.
    """
    limits = need.limits()
    if not limits:
        return False
    assert need.window is not None
    end = need.window[1]
    events = answer.get("events") or {}
    for name, limit in limits.items():
        listed = events.get(name) or ()
        if len(listed) < limit:
            continue
        per_source: dict[object, list[Any]] = {}
        for event in listed:
            per_source.setdefault(event.get("source"), []).append(event)
        for full in per_source.values():
            if len(full) < limit:
                continue
            for event in full:
                second = _epoch_second(event.get("created_date"))
                if second is None or second >= end:
                    return True
    return False


def profile_body(ref: UserRef, need: ProfileNeed) -> dict[str, Any]:
    """The E2 request for one user and one (merged) need.

    A need with nothing in it (only ``insiderId`` or ``__typename`` selected) still has
    to name something (§3.2.2: attributes or events are required): it asks for ``iid``,
    which every answer carries anyway.
    """
    body = ref.body()
    if need.all_attributes:
        body["attributes"] = ALL_ATTRIBUTES
    elif need.attributes or not need.events:
        body["attributes"] = sorted(need.attributes) or ["iid"]
    if need.events:
        assert need.window is not None
        limits = need.limits()
        body["events"] = {
            "start_date": need.window[0],
            "end_date": need.window[1],
            "wanted": [_wanted(name, params, limits.get(name)) for name, params in need.events],
        }
    return body


def _wanted(name: str, params: frozenset[str], limit: int | None) -> dict[str, Any]:
    item: dict[str, Any] = {"event_name": name, "params": sorted(params)}
    if limit is not None:
        # §3.2.4; safe by the argument in the module doc (ProfileNeed.limits).
        item["limit_per_source"] = limit
    return item


ProfileKey = tuple[UserRef, ProfileNeed]
Profile = dict[str, Any]


@dataclass
class ProfileLoader:
    """Per-request loader of ``(UserRef, ProfileNeed)`` -> the UCD's profile answer or None.

    Built in ``build_context`` for every request (aiodataloader binds the running loop,
    and a shared cache would serve one caller's data to another). Keys of one tick are
    batched; keys naming the same user merge into one call.
    """

    reads: ProfileReads
    _loader: DataLoader[ProfileKey, Profile | None] = field(init=False)

    def __post_init__(self) -> None:
        self._loader = DataLoader(self._batch, loop=asyncio.get_running_loop())

    async def load(self, ref: UserRef, need: ProfileNeed) -> Profile | None:
        result: Profile | None = await self._loader.load((ref, need))
        return result

    async def load_many(self, keys: Sequence[ProfileKey]) -> list[Profile | None]:
        results: list[Profile | None] = await self._loader.load_many(keys)
        return results

    def clear(self) -> None:
        """Forget cached answers: called after a mutation changed the UCD's data.

        Also ends the shared reads' generation, so no later read of any request joins a
        call that was sent before this change (``ProfileReads.invalidate``).
        """
        self._loader.clear_all()
        self.reads.invalidate()

    async def _batch(self, keys: list[ProfileKey]) -> list[Any]:
        # list[Profile | None | Exception]: aiodataloader rejects a key's future when its
        # item is an exception, so one failed user does not fail the others' loads.
        needs: dict[UserRef, ProfileNeed] = {}
        for ref, need in keys:
            needs[ref] = needs[ref].merge(need) if ref in needs else need
        if len(needs) == 1:
            # One user (the usual single-user request): no gather, no per-user tasks.
            ((ref, need),) = needs.items()
            try:
                answer: Any = await self.reads.fetch(ref, need)
            except Exception as exc:  # handed to aiodataloader as every key's item
                answer = exc
            return [answer] * len(keys)
        refs = list(needs)
        answers = await asyncio.gather(
            *(self.reads.fetch(ref, needs[ref]) for ref in refs), return_exceptions=True
        )
        by_ref = dict(zip(refs, answers, strict=True))
        return [by_ref[ref] for ref, _ in keys]
