"""What one operation needs from one user's profile, and how needs merge into one E2 call.

The GraphQL layer (``gateway.api.selection``) turns a selection into a ``ProfileNeed``;
the loader merges the needs of one user into one, and ``request`` writes it as the E2
request. Every resolver gets the merged answer and filters its own part out of it
(events by window and ``last``; attributes by name), so merging never has to split an
answer back up.

Why one window per user: an E2 request has a single ``start_date``/``end_date`` for all
its wanted events (docs/ucd-rest-api.md §3.2.1). Several ``events(...)`` selections
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

from collections.abc import Iterable
from dataclasses import dataclass, replace

from gateway.ucd.answers import EventRecord, ProfileAnswer, created_date, event_source
from gateway.ucd.names import ALL_ATTRIBUTES, IID
from gateway.ucd.requests import Attributes, EventsQuery, ProfileRequest, UserRef, WantedEvents
from gateway.ucd.times import epoch_seconds, parse_instant

__all__ = ["Last", "ProfileNeed", "limits_may_hide_events"]


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
    which of them may be sent as ``limit_per_source`` (see the module doc). ``fresh``
    (``user(key:, fresh: true)``) reads past the profile cache (``reads/cache.py``).
    """

    attributes: frozenset[str] | str = frozenset()
    events: tuple[tuple[str, frozenset[str]], ...] = ()
    window: tuple[int, int] | None = None
    lasts: tuple[Last, ...] = ()
    fresh: bool = False

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
            attributes,
            tuple(sorted(events.items())),
            window,
            _merge_lasts(self, other),
            self.fresh or other.fresh,
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

    def request(self, ref: UserRef) -> ProfileRequest:
        """The E2 request for one user and this (merged) need.

        A need with nothing in it (only ``insiderId`` or ``__typename`` selected) still has
        to name something (§3.2.2: attributes or events are required): it asks for ``iid``,
        which every answer carries anyway.
        """
        attributes: Attributes | None = None
        if self.all_attributes:
            attributes = ALL_ATTRIBUTES
        elif self.attributes or not self.events:
            attributes = tuple(sorted(self.attributes)) or (IID,)
        events = None
        if self.events:
            assert self.window is not None
            limits = self.limits()
            events = EventsQuery(
                self.window[0],
                self.window[1],
                tuple(
                    # §3.2.4; safe by the argument in the module doc (limits).
                    WantedEvents(name, tuple(sorted(params)), limits.get(name))
                    for name, params in self.events
                ),
            )
        return ProfileRequest(ref, attributes, events)

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


def limits_may_hide_events(need: ProfileNeed, answer: ProfileAnswer) -> bool:
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
    for name, limit in limits.items():
        listed = answer.events_named(name)
        if len(listed) < limit:
            continue
        per_source: dict[object, list[EventRecord]] = {}
        for event in listed:
            per_source.setdefault(event_source(event), []).append(event)
        for full in per_source.values():
            if len(full) < limit:
                continue
            for event in full:
                # The resolvers' own parser (gateway.ucd.times): an event they drop as
                # unparseable must count here too, or ``last: N`` answers fewer than N.
                stamp = parse_instant(created_date(event))
                if stamp is None or epoch_seconds(stamp) >= end:
                    return True
    return False
