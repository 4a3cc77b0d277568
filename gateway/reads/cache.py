"""The identity-aware profile cache, shared by every replica through the state store.

Off unless ``UCD_GATEWAY_PROFILE_CACHE_TTL`` is set. It sits between the request's
loader and ``ProfileReads``: a read asks the cache first, and the UCD only for what the
cache does not hold (a query for fewer fields than a cached answer costs no call; one
for more fetches only the difference).

**What is kept** (``Namespace.PROFILE_CACHE``, every record expiring with the TTL):

* ``e:<insider_id>``: one entry per user: each attribute read (its value, or "absent"),
  whether every attribute was read (``*``), and each event name read with its params and
  window (only lists read without ``limit_per_source``), every part with the counter
  value it was read at (its *tag*) and the wall-clock second it was read;
* ``a:<h>``: an alias, identifier -> insider_id, learned from the UCD's answers (the
  identifier the read named, and the email, phone and uuid the answer holds: a missed
  read asks for those three too, at no quota cost). ``h`` is an HMAC-SHA256 of the
  identifier under ``UCD_GATEWAY_PROFILE_CACHE_SECRET`` (or the partner token), so no
  key spells out an email or a phone number;
* ``v:<insider_id>``, ``v:a:<h>``, ``v:all``: marks left by writes (``stamp``), and
  ``clock``, the counter marks and tags are taken from.

**Read-your-writes across replicas, by key versioning.** A read snapshots the counter
before it sends its UCD call, and stores what it read only if no mark above that
snapshot exists on the user or on any identifier it learned (``put_unless_stamped``,
atomic). A write, once the UCD answered it and before its payload is answered, marks the
identifiers it named (``*``), then looks their aliases up and marks the users they
point to: with ``*`` for identity changes and possible merges, else with exactly the
attributes (``a.<name>``) and event names (``e.<name>``) it touched, so a
``deleteAttributes`` of ``tier`` leaves ``name`` cached. A part counts only while its
tag is at least every mark that concerns it. Why this order closes every race:

* a read whose UCD call came before the write snapshotted the counter before the
  write's marks, so it cannot store after them, and what it stored before them is
  outranked by them; a read whose snapshot came after the marks read after the write;
* a read that learned the user under an identifier the write named, and stored before
  the write marked that identifier, left the alias the write then finds and follows;
* an identifier the cache has no alias for is one no entry holds, for email, phone and
  uuid (every entry learns them); a custom identifier or an insider_id it cannot
  resolve may still name a cached user, so such a write marks everything (``v:all``).

**Erasure** (``deletePii``, ``deleteUser``) finds the user before the UCD call (its
email may be gone after; through the aliases, or one E2 call for ``iid`` when the cache
has none), and after it marks the user and deletes its entry, its aliases and their
marks: no byte of its email or phone is left in the store, and no read in flight can
store one back (the user's mark outranks its snapshot).

**Outage.** A read that cannot reach the state goes to the UCD uncached (and the cache
is skipped for a second, so a dead Redis costs one timeout a second, not one a read).
A write whose marks cannot be written answers ``STATE_UNAVAILABLE`` (the UCD applied
it; the caller is told the replicas may still hold the old value), so no stale read
follows an acknowledged write.

**Callers without ``pii:read``** (gateway/auth/) must not make the UCD be asked for PII,
the email and phone included (``withheld``). Their misses ask only for what they may see
and store nothing: an entry that does not know its user's email and phone could not be
found by a write naming them (see above), so storing it would allow a stale read. Their
hits are served from entries other callers stored, with only what they asked for.

What stays stale: writes made to the UCD by other systems, until the TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from gateway.errors import StateUnavailable
from gateway.reads.inflight import ProfileReads
from gateway.reads.need import ProfileNeed
from gateway.settings import Settings
from gateway.state.protocol import Namespace, StateStore, highest_mark
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.call_count import count_cache_hit
from gateway.ucd.names import EMAIL, IID, PHONE_NUMBER, UUID, canonical_read_name
from gateway.ucd.requests import UserRef

__all__ = ["ProfileCache", "Touch", "open_profile_cache"]

NS: Final = Namespace.PROFILE_CACHE
CLOCK: Final = "clock"
EVERYTHING: Final = "v:all"
#: The identifier attributes every missed read asks for, to learn the user's aliases.
IDENTITY: Final = (EMAIL, PHONE_NUMBER, UUID)
#: Seconds the cache is skipped after the state failed to answer a read.
PAUSE_AFTER_OUTAGE: Final = 1.0
#: Marks outlive the entries they invalidate by this much (a slow read's store).
MARK_MARGIN: Final = 120.0


def _field(prefix: str, name: str) -> str:
    """A mark's field for one attribute or event name: hashed, so any name fits the
    marks' ``<field>=<g>;`` text."""
    return prefix + hashlib.blake2b(name.encode(), digest_size=8).hexdigest()


def attribute_field(name: str) -> str:
    return _field("a.", name)


def event_field(name: str) -> str:
    return _field("e.", name)


#: The field of "any attribute": a ``*`` read is complete only while none changed.
ANY_ATTRIBUTE: Final = "a"


@dataclass(frozen=True)
class Touch:
    """What one write may have changed: the users its identifiers name, and either
    ``fields`` (attribute read names, event names) or everything (``fields`` None)."""

    refs: tuple[UserRef, ...]
    attributes: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    everything: bool = False

    def marks(self) -> list[str]:
        if self.everything:
            return ["*"]
        fields = [attribute_field(name) for name in sorted(self.attributes)]
        if self.attributes:
            fields.append(ANY_ATTRIBUTE)
        fields.extend(event_field(name) for name in sorted(self.events))
        return fields


def _identifiers(ref: UserRef) -> list[tuple[str, str]]:
    """Every identifier of a ref, as (kind, value); custom kinds are ``c:<name>``."""
    ids: list[tuple[str, str]] = []
    if ref.insider_id is not None:
        ids.append((IID, ref.insider_id))
    if ref.email is not None:
        ids.append((EMAIL, ref.email))
    if ref.phone_number is not None:
        ids.append((PHONE_NUMBER, ref.phone_number))
    if ref.uuid is not None:
        ids.append((UUID, ref.uuid))
    ids.extend(("c:" + name, value) for name, value in ref.custom)
    return ids


def _lookup_identifier(ref: UserRef) -> tuple[str, str] | None:
    """The one identifier the UCD finds ``ref`` by, when that is certain: its insider_id
    (which alone decides, §4.3), or its only identifier; None for several (the UCD tries
    them in order and takes the first that has an owner: such reads go uncached)."""
    if ref.insider_id is not None:
        return (IID, ref.insider_id)
    ids = _identifiers(ref)
    return ids[0] if len(ids) == 1 else None


@dataclass
class _Part:
    tag: int
    read_at: float


@dataclass
class _Attribute(_Part):
    present: bool
    value: Any = None


@dataclass
class _Events(_Part):
    params: frozenset[str]
    window: tuple[int, int]
    records: list[Any]


@dataclass
class _Entry:
    """One user's cached parts (as stored, or the valid ones of a stored entry)."""

    iid: str
    aliases: set[str] = field(default_factory=set)
    attributes: dict[str, _Attribute] = field(default_factory=dict)
    everything: _Part | None = None  # every attribute was read (a ``*`` read)
    events: dict[str, _Events] = field(default_factory=dict)

    def dump(self) -> bytes:
        return orjson.dumps(
            {
                "i": self.iid,
                "al": sorted(self.aliases),
                "at": {
                    name: [p.tag, p.read_at, p.present, p.value]
                    for name, p in self.attributes.items()
                },
                "all": None
                if self.everything is None
                else [self.everything.tag, self.everything.read_at],
                "ev": {
                    name: [p.tag, p.read_at, sorted(p.params), list(p.window), p.records]
                    for name, p in self.events.items()
                },
            }
        )

    @classmethod
    def load(cls, raw: bytes) -> _Entry:
        body = orjson.loads(raw)
        every = body["all"]
        return cls(
            iid=body["i"],
            aliases=set(body["al"]),
            attributes={
                name: _Attribute(tag, at, present, value)
                for name, (tag, at, present, value) in body["at"].items()
            },
            everything=None if every is None else _Part(every[0], every[1]),
            events={
                name: _Events(tag, at, frozenset(params), (window[0], window[1]), records)
                for name, (tag, at, params, window, records) in body["ev"].items()
            },
        )

    def valid(self, marks: bytes | None, everywhere: int, oldest: float) -> _Entry:
        """The parts no mark outranks and the TTL has not expired."""

        def fresh(part: _Part, *fields: str) -> bool:
            floor = max(everywhere, highest_mark(marks, fields))
            return part.tag >= floor and part.read_at > oldest

        every = self.everything
        return _Entry(
            iid=self.iid,
            aliases=set(self.aliases),
            attributes={
                name: part
                for name, part in self.attributes.items()
                if fresh(part, attribute_field(name))
            },
            everything=every if every is not None and fresh(every, ANY_ATTRIBUTE) else None,
            events={
                name: part for name, part in self.events.items() if fresh(part, event_field(name))
            },
        )

    def knows(self, name: str) -> bool:
        return name in self.attributes or self.everything is not None

    def missing(self, need: ProfileNeed) -> ProfileNeed:
        """What of ``need`` these parts do not hold (empty: a hit)."""
        attributes: frozenset[str] | str
        if need.all_attributes:
            attributes = need.attributes if self.everything is None else frozenset()
        else:
            assert isinstance(need.attributes, frozenset)
            attributes = frozenset(
                name for name in need.attributes if not self.knows(canonical_read_name(name))
            )
        events = tuple(
            (name, params)
            for name, params in need.events
            if not self._covers(name, params, need.window)
        )
        names = {name for name, _ in events}
        return ProfileNeed(
            attributes,
            events,
            need.window if events else None,
            tuple(last for last in need.lasts if last[0] in names),
        )

    def _covers(self, name: str, params: frozenset[str], window: tuple[int, int] | None) -> bool:
        part = self.events.get(name)
        if part is None or window is None or not params <= part.params:
            return False
        return part.window[0] <= window[0] and window[1] <= part.window[1]

    def answer(self, need: ProfileNeed, fetched: ProfileAnswer | None = None) -> ProfileAnswer:
        """The answer to ``need`` from these parts, with ``fetched`` (the UCD's answer to
        what was missing) on top."""
        attributes: dict[str, Any] = {}
        if need.all_attributes:
            attributes.update((n, p.value) for n, p in self.attributes.items() if p.present)
        else:
            assert isinstance(need.attributes, frozenset)
            for name in need.attributes:
                part = self.attributes.get(canonical_read_name(name))
                if part is not None and part.present:
                    attributes[canonical_read_name(name)] = part.value
        events: dict[str, Any] = {
            name: self.events[name].records for name, _ in need.events if name in self.events
        }
        if fetched is not None:
            wanted = (
                None if need.all_attributes else {canonical_read_name(n) for n in need.attributes}
            )
            attributes.update(
                (n, v) for n, v in fetched.attributes.items() if wanted is None or n in wanted
            )
            events.update(fetched.events)
        attributes[IID] = self.iid
        return ProfileAnswer(attributes, events)

    def learn(self, asked: ProfileNeed, answer: ProfileAnswer, tag: int, now: float) -> None:
        """Add the parts ``answer`` (to ``asked``) holds, read at ``tag``."""
        if asked.all_attributes:
            self.attributes = {
                name: _Attribute(tag, now, True, value)
                for name, value in answer.attributes.items()
                if name != IID
            }
            self.everything = _Part(tag, now)
        else:
            assert isinstance(asked.attributes, frozenset)
            for name in asked.attributes:
                key = canonical_read_name(name)
                if key == IID:
                    continue
                present = key in answer.attributes
                self.attributes[key] = _Attribute(tag, now, present, answer.attributes.get(key))
        limited = asked.limits()
        if asked.window is not None:
            for name, params in asked.events:
                if name not in limited:  # a limited list may lack what a later read wants
                    records = list(answer.events_named(name))
                    self.events[name] = _Events(tag, now, params, asked.window, records)


class ProfileCache:
    """The cache in front of ``ProfileReads``: one per process, over the shared state."""

    def __init__(
        self,
        state: StateStore,
        reads: ProfileReads,
        *,
        ttl: float,
        secret: bytes,
        clock: Any = time.time,
        monotonic: Any = time.monotonic,
    ) -> None:
        self._state = state
        self._reads = reads
        self._ttl = ttl
        self._secret = secret
        self._clock = clock
        self._monotonic = monotonic
        self._paused_until = 0.0
        self.hits = 0  # reads answered without a UCD call (tests, bench, /metrics)
        self.reads = 0  # every read through the cache (/metrics: the hit ratio)

    @property
    def state(self) -> StateStore:
        """The shared state it keeps entries in (tests look for erased bytes in it)."""
        return self._state

    # --- keys -----------------------------------------------------------------------

    def _alias(self, kind: str, value: str) -> str:
        """The identifier's keyed hash: the cache's keys never hold the identifier."""
        digest = hmac.new(self._secret, f"{kind}\0{value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:40]

    def _aliases_of(self, ref: UserRef) -> list[str]:
        return [self._alias(kind, value) for kind, value in _identifiers(ref)]

    # --- reads ----------------------------------------------------------------------

    async def fetch(
        self, ref: UserRef, need: ProfileNeed, *, withheld: Collection[str] = ()
    ) -> ProfileAnswer | None:
        """The answer to ``need``, from the cache where it can. ``withheld``: read names
        the caller may not see (gateway/auth/), never asked of the UCD; a read that could
        not learn the user's every identifier for them stores nothing (invalidation
        follows writes through identifiers it knows, so an entry must know them all)."""
        self.reads += 1
        lookup = _lookup_identifier(ref)
        if lookup is None or self._monotonic() < self._paused_until:
            return await self._reads.fetch(ref, need)
        alias = self._alias(*lookup)
        try:
            since, cached = await self._lookup(alias, fresh=need.fresh)
        except StateUnavailable:
            self._pause()
            return await self._reads.fetch(ref, need)
        return await self._read(ref, need, alias, since, cached, frozenset(withheld))

    def _pause(self) -> None:
        self._paused_until = self._monotonic() + PAUSE_AFTER_OUTAGE

    async def _lookup(self, alias: str, *, fresh: bool) -> tuple[int, _Entry | None]:
        """The counter's value now, and the valid parts of the user ``alias`` names."""
        record, alias_marks, counter = await self._state.get_many(
            NS, [f"a:{alias}", f"v:a:{alias}", CLOCK]
        )
        since = int(counter or 0)
        if record is None or fresh:
            return since, None
        target = orjson.loads(record)
        if target["g"] < highest_mark(alias_marks, ()):
            return since, None
        iid: str = target["i"]
        raw, marks, everything = await self._state.get_many(
            NS, [f"e:{iid}", f"v:{iid}", EVERYTHING]
        )
        everywhere = highest_mark(everything)
        if raw is None or target["g"] < max(everywhere, highest_mark(marks, ())):
            return since, None
        entry = _Entry.load(raw).valid(marks, everywhere, self._clock() - self._ttl)
        return since, entry

    async def _read(
        self,
        ref: UserRef,
        need: ProfileNeed,
        alias: str,
        since: int,
        cached: _Entry | None,
        withheld: frozenset[str],
    ) -> ProfileAnswer | None:
        missing = need if cached is None else cached.missing(need)
        if cached is not None and _empty(missing):
            self.hits += 1
            count_cache_hit()
            return cached.answer(need)
        asked = _with_identity(missing, cached, withheld)
        answer, tag = await self._reads.fetch_tagged(ref, asked, since)
        if answer is None:
            return None
        iid = answer.insider_id
        if iid is None:
            return answer
        if cached is not None and cached.iid != iid:
            # The alias named someone else (merged, or moved by another system): read
            # the whole need for the user the UCD answered with.
            return await self._read(ref, need, alias, since, None, withheld)
        entry = cached if cached is not None else _Entry(iid)
        try:
            await self._store(entry, alias, asked, answer, tag, stored=cached is not None)
        except StateUnavailable:
            self._pause()
        return entry.answer(need, answer) if cached is not None else _only(need, answer)

    async def _store(
        self,
        entry: _Entry,
        alias: str,
        asked: ProfileNeed,
        answer: ProfileAnswer,
        tag: int,
        *,
        stored: bool,
    ) -> None:
        """Write the entry with what ``answer`` adds, and the aliases it teaches, unless a
        write marked the user or one of those identifiers after ``tag``. ``stored``: the
        entry's aliases were read with it already."""
        entry = _Entry(
            entry.iid,
            set(entry.aliases),
            dict(entry.attributes),
            entry.everything,
            dict(entry.events),
        )
        entry.learn(asked, answer, tag, self._clock())
        if not all(entry.knows(kind) for kind in IDENTITY):
            return  # a caller without pii:read read it: see the module's docstring
        if not stored:
            (before,) = await self._state.get_many(NS, [f"e:{entry.iid}"])
            if before is not None:
                # Aliases of an outranked entry may still point here: keep them listed,
                # so an erasure finds and deletes them all.
                entry.aliases |= _Entry.load(before).aliases
        learned = {alias, self._alias(IID, entry.iid)}
        for kind in IDENTITY:
            value = answer.attributes.get(kind)
            if isinstance(value, str):
                learned.add(self._alias(kind, value))
        entry.aliases |= learned
        pointer = orjson.dumps({"i": entry.iid, "g": tag})
        items = {f"e:{entry.iid}": entry.dump(), **{f"a:{h}": pointer for h in learned}}
        guards = [f"v:{entry.iid}", EVERYTHING, *(f"v:a:{h}" for h in sorted(learned))]
        await self._state.put_unless_stamped(NS, items, guards=guards, since=tag, ttl=self._ttl)

    # --- writes ---------------------------------------------------------------------

    async def invalidate(self, touches: Iterable[Touch]) -> None:
        """After a write the UCD answered, before its payload: mark what it touched.

        Raises ``StateUnavailable`` when the marks cannot be written."""
        touches = list(touches)
        if not touches:
            return
        named: dict[str, set[str]] = {}
        for touch in touches:
            for h in self._aliases_of_all(touch.refs):
                named.setdefault(h, set()).update(touch.marks())
        aliases = sorted(named)
        mark_ttl = self._ttl + MARK_MARGIN
        # 1. The identifiers: from now on no read that started before stores under them
        #    (any mark refuses a store; only ``*`` outranks the alias itself).
        await self._state.stamp(
            NS, CLOCK, {f"v:a:{h}": sorted(named[h]) for h in aliases}, ttl=mark_ttl
        )
        # 2. The users they name (aliases stored before step 1 are all visible now).
        targets = await self._targets(aliases)
        marks: dict[str, list[str]] = {}
        unresolved = False
        for touch in touches:
            fields = touch.marks()
            for ref in touch.refs:
                users = {targets[h] for h in self._aliases_of(ref) if h in targets}
                if ref.insider_id is not None:
                    users.add(ref.insider_id)
                if _may_hide_a_user(ref, self._aliases_of(ref), targets):
                    unresolved = True
                for iid in users:
                    marks.setdefault(f"v:{iid}", []).extend(fields)
        if unresolved:
            marks[EVERYTHING] = ["*"]
        if marks:
            await self._state.stamp(
                NS, CLOCK, {key: sorted(set(fields)) for key, fields in marks.items()}, ttl=mark_ttl
            )

    def _aliases_of_all(self, refs: Iterable[UserRef]) -> list[str]:
        return [h for ref in refs for h in self._aliases_of(ref)]

    async def _targets(self, aliases: Sequence[str]) -> dict[str, str]:
        """alias -> insider_id for every alias record, outranked or not (a write follows
        them all: an outranked alias may still name a user with valid parts)."""
        if not aliases:
            return {}
        records = await self._state.get_many(NS, [f"a:{h}" for h in aliases])
        return {
            h: orjson.loads(r)["i"] for h, r in zip(aliases, records, strict=True) if r is not None
        }

    async def before_erasure(self, ref: UserRef) -> set[str]:
        """The users an erasure by ``ref`` may concern, found before it (its email and
        phone may find nobody after): through the aliases, else with one E2 call."""
        users = set((await self._targets(self._aliases_of(ref))).values())
        if ref.insider_id is not None:
            users.add(ref.insider_id)
        if not users:
            answer = await self._reads.fetch(ref, ProfileNeed())
            if answer is not None and answer.insider_id is not None:
                users.add(answer.insider_id)
        return users

    async def erased(self, ref: UserRef, users: Collection[str]) -> None:
        """After the UCD erased: no read in flight may store the users again, and every
        byte the cache held of them goes (entries, aliases, the aliases' marks)."""
        named = self._aliases_of(ref)
        mark_ttl = self._ttl + MARK_MARGIN
        await self._state.stamp(
            NS,
            CLOCK,
            {**{f"v:{iid}": ["*"] for iid in users}, **{f"v:a:{h}": ["*"] for h in named}},
            ttl=mark_ttl,
        )
        entries = await self._state.get_many(NS, [f"e:{iid}" for iid in sorted(users)])
        aliases = set(named)
        for raw in entries:
            if raw is not None:
                aliases |= _Entry.load(raw).aliases
        doomed = [f"e:{iid}" for iid in sorted(users)]
        for h in sorted(aliases):
            doomed += [f"a:{h}", f"v:a:{h}"]
        await self._state.delete_many(NS, doomed)


def _may_hide_a_user(ref: UserRef, aliases: Sequence[str], targets: Mapping[str, str]) -> bool:
    """True when a write by ``ref`` may concern a cached user the aliases do not name:
    a custom identifier or insider_id the cache has no alias for (entries learn every
    email, phone and uuid of their user, but not those)."""
    known = {h for h in aliases if h in targets}
    kinds = _identifiers(ref)
    for (kind, _), h in zip(kinds, aliases, strict=True):
        if h not in known and (kind == IID or kind.startswith("c:")):
            return True
    return False


def _empty(need: ProfileNeed) -> bool:
    return not need.events and not need.all_attributes and not need.attributes


def _with_identity(
    missing: ProfileNeed, cached: _Entry | None, withheld: frozenset[str]
) -> ProfileNeed:
    """``missing`` plus the identifier attributes the entry does not hold yet (but those
    the caller may not see)."""
    if missing.all_attributes:
        return missing
    assert isinstance(missing.attributes, frozenset)
    unknown = {
        kind
        for kind in IDENTITY
        if kind not in withheld and (cached is None or not cached.knows(kind))
    }
    return ProfileNeed(missing.attributes | unknown, missing.events, missing.window, missing.lasts)


def _only(need: ProfileNeed, answer: ProfileAnswer) -> ProfileAnswer:
    """The UCD's answer without the identifier attributes the cache asked for besides."""
    if need.all_attributes:
        return answer
    wanted = {canonical_read_name(name) for name in need.attributes} | {IID}
    if all(name in wanted for name in answer.attributes):
        return answer
    return ProfileAnswer({n: v for n, v in answer.attributes.items() if n in wanted}, answer.events)


def open_profile_cache(
    settings: Settings, state: StateStore, reads: ProfileReads
) -> ProfileCache | None:
    """The cache the settings ask for: None unless ``UCD_GATEWAY_PROFILE_CACHE_TTL`` is set."""
    if settings.profile_cache_ttl is None:
        return None
    secret = settings.profile_cache_secret or settings.token
    return ProfileCache(
        state, reads, ttl=settings.profile_cache_ttl, secret=secret.get_secret_value().encode()
    )
