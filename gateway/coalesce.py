"""Process-wide coalescing of UCD calls across concurrent GraphQL requests.

Two things live here, both created once per process (the app's lifespan) and shared by
every request:

* ``ProfileReads`` — in-flight dedupe of profile reads. While a profile call for a user
  is on the wire, a request for the same user whose need that call covers waits for the
  same answer instead of sending its own.
* ``UpsertCoalescer`` — single-user upserts arriving within a short window go to the UCD
  as one E1 call; each caller gets only its own user's outcome, after the UCD answered.

``send_batches`` is the shared write path: it cuts users into E1/E4 requests of at most
1,000 users and under 5,000,000 bytes (§3.1, §3.4) and sends them concurrently.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import orjson

from gateway.loaders import ProfileNeed, UserRef, limits_may_hide_events, profile_body
from gateway.ucd.client import DataEnvelope, UcdClient

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_USERS_PER_CALL",
    "ProfileReads",
    "UpsertCoalescer",
    "UserOutcome",
    "send_batches",
    "split_envelope",
]

#: E1/E4 accept 1 to 1,000 users per request (§3.1.1, §3.4.1).
MAX_USERS_PER_CALL: Final = 1000
#: The UCD's body limit is 5,000,000 bytes (§2.4); the issue asks for bodies *under* it.
MAX_BODY_BYTES: Final = 4_999_999

#: Per-user error keys of the data envelope: ``users.<N>.<rest>`` (§3.1.3).
_USER_KEY_RE: Final = re.compile(r"^users\.(\d+)\.(.+)$")


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


def split_envelope(envelope: DataEnvelope, count: int) -> list[UserOutcome]:
    """Cut a data envelope into per-user outcomes, by the ``N`` of each error key.

    >>> env = DataEnvelope(1, 1, {"users.1.identifiers.*.regexp(x)": ["not a valid email"]})
    >>> [o.ok for o in split_envelope(env, 2)]
    [True, False]
    """
    per_user: list[dict[str, list[str]]] = [{} for _ in range(count)]
    for key, messages in envelope.errors.items():
        match = _USER_KEY_RE.match(key)
        if match is None or int(match.group(1)) >= count:
            # Not a per-user key: nothing in §3.1.5 produces one; ignore rather than guess.
            continue
        per_user[int(match.group(1))].setdefault(match.group(2), []).extend(messages)
    return [UserOutcome(errors) for errors in per_user]


# --- batched writes ---------------------------------------------------------------------

Send = Callable[[Mapping[str, Any]], Awaitable[DataEnvelope]]

#: The outcome of a user that cannot fit any request on its own.
TOO_BIG: Final = UserOutcome(
    {"size": ["this user is bigger than the UCD's 5,000,000-byte request limit"]}
)


def _frame_bytes(top: Mapping[str, Any]) -> int:
    """Bytes of ``{"users":[],...top}`` as orjson writes it (the client's encoder)."""
    return len(orjson.dumps({"users": [], **top}))


def plan_chunks(sizes: Sequence[int], top: Mapping[str, Any]) -> tuple[list[list[int]], list[int]]:
    """Group user indexes into requests: <= 1,000 users and < 5,000,000 bytes each.

    Returns the chunks and the indexes that fit no request at all. Users stay in input
    order (the UCD applies a request's users in order, §3.1.4, and so do we across
    chunks of one mutation as far as concurrency allows).
    """
    frame = _frame_bytes(top)
    chunks: list[list[int]] = []
    too_big: list[int] = []
    current: list[int] = []
    used = frame
    for index, size in enumerate(sizes):
        if frame + size > MAX_BODY_BYTES:
            too_big.append(index)
            continue
        # +1 for the comma between two users.
        extra = size + (1 if current else 0)
        if current and (len(current) >= MAX_USERS_PER_CALL or used + extra > MAX_BODY_BYTES):
            chunks.append(current)
            current, used, extra = [], frame, size
        current.append(index)
        used += extra
    if current:
        chunks.append(current)
    return chunks, too_big


async def send_batches(
    send: Send, users: Sequence[Mapping[str, Any]], top: Mapping[str, Any] | None = None
) -> list[UserOutcome | BaseException]:
    """Send users through E1 or E4 in as few requests as the limits allow, concurrently.

    Each item of the result is the user's outcome, or the exception its request raised
    (the caller decides whether one failed chunk fails the whole operation).
    """
    top = dict(top or {})
    chunks, _ = plan_chunks([len(orjson.dumps(user)) for user in users], top)
    # Every user a chunk holds gets its own result below; the others keep TOO_BIG.
    results: list[UserOutcome | BaseException] = [TOO_BIG] * len(users)

    async def run(chunk: list[int]) -> None:
        body = {"users": [users[i] for i in chunk], **top}
        try:
            envelope = await send(body)
        except Exception as exc:  # reported per user; the caller raises or maps it
            for i in chunk:
                results[i] = exc
            return
        for i, outcome in zip(chunk, split_envelope(envelope, len(chunk)), strict=True):
            results[i] = outcome

    await asyncio.gather(*(run(chunk) for chunk in chunks))
    return results


# --- the upsert coalescer -----------------------------------------------------------------


@dataclass
class _Pending:
    user: Mapping[str, Any]
    size: int
    future: asyncio.Future[UserOutcome]


@dataclass
class _Batch:
    """Users waiting for the same flush; one batch per distinct ``skip_hook``."""

    pending: list[_Pending] = field(default_factory=list)
    used: int = 0
    timer: asyncio.TimerHandle | None = None


class UpsertCoalescer:
    """Collects single-user upserts for ``window_ms`` and sends them as one E1 call.

    Why: a burst of 200 one-user mutations would otherwise be 200 E1 calls against a
    25,000/min pool (§2.6). The window starts with the first waiting user; a batch that
    reaches 1,000 users or the byte limit is sent at once. Users with different
    ``skip_hook`` never share a call (it is a request-level flag). Two users of one call
    that name the same person are applied in order by the UCD (§3.1.4), as if sent one
    after the other.
    """

    def __init__(self, ucd: UcdClient, *, window_ms: float) -> None:
        self._ucd = ucd
        self._window = max(window_ms, 0.0) / 1000.0
        self._batches: dict[bool, _Batch] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, user: Mapping[str, Any], *, skip_hook: bool = False) -> UserOutcome:
        """Queue one E1 user object; returns its outcome once the UCD has answered.

        Raises the gateway error of the whole call (e.g. ``UpstreamUnavailable``) when
        the call as a whole failed.
        """
        size = len(orjson.dumps(user))
        frame = _frame_bytes({"skip_hook": skip_hook})
        if frame + size > MAX_BODY_BYTES:
            return TOO_BIG
        loop = asyncio.get_running_loop()
        future: asyncio.Future[UserOutcome] = loop.create_future()
        batch = self._batches.get(skip_hook)
        if batch is not None and (
            len(batch.pending) >= MAX_USERS_PER_CALL
            or frame + batch.used + size + 1 > MAX_BODY_BYTES
        ):
            self._flush(skip_hook)
            batch = None
        if batch is None:
            batch = self._batches[skip_hook] = _Batch()
            if self._closed:
                # Shutting down: nothing may wait for a timer that aclose already ran.
                loop.call_soon(self._flush, skip_hook)
            else:
                batch.timer = loop.call_later(self._window, self._flush, skip_hook)
        batch.pending.append(_Pending(user, size, future))
        batch.used += size + (1 if len(batch.pending) > 1 else 0)
        if len(batch.pending) >= MAX_USERS_PER_CALL:
            # Full: waiting longer cannot add anyone to this call.
            self._flush(skip_hook)
        return await future

    def _flush(self, skip_hook: bool) -> None:
        batch = self._batches.pop(skip_hook, None)
        if batch is None or not batch.pending:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._send(batch.pending, skip_hook))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _send(self, pending: list[_Pending], skip_hook: bool) -> None:
        body = {"users": [p.user for p in pending], "skip_hook": skip_hook}
        try:
            envelope = await self._ucd.upsert(body)
        except Exception as exc:
            for p in pending:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        except BaseException:
            # Cancelled (loop shutting down): the callers must not wait forever.
            for p in pending:
                if not p.future.done():
                    p.future.cancel()
            raise
        for p, outcome in zip(pending, split_envelope(envelope, len(pending)), strict=True):
            if not p.future.done():
                p.future.set_result(outcome)

    async def aclose(self) -> None:
        """Send everything still waiting and wait for every call on the wire."""
        self._closed = True
        for skip_hook in list(self._batches):
            self._flush(skip_hook)
        while self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)


# --- in-flight dedupe of profile reads ----------------------------------------------------


class ProfileReads:
    """Shares profile calls between concurrent requests.

    Keyed by user: a new read waits for a call already on the wire for the same
    ``UserRef`` when that call's need covers the new one (same or more attributes,
    event names and params, a window that contains the new one, and no
    ``limit_per_source`` the new one could lose events to: ``ProfileNeed.covers``);
    otherwise it sends its own call. Answers are shared, so resolvers treat them as read-only.

    Writes end a generation (``invalidate``, called by every mutation once the UCD
    answered): a read joins only calls sent in the current generation. Otherwise a
    caller reading right after its own write could be handed the answer to a call sent
    before that write, and see its change undone.

    One instance per ``UcdClient`` (``for_client``) unless the app passes its own.
    """

    _per_client: ClassVar[weakref.WeakKeyDictionary[UcdClient, ProfileReads]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, ucd: UcdClient) -> None:
        self._ucd = ucd
        self._flights: dict[UserRef, list[tuple[ProfileNeed, int, asyncio.Future[Any]]]] = {}
        self._generation = 0
        self.shared = 0  # reads answered by another request's call (for tests and metrics)

    def invalidate(self) -> None:
        """A write was applied: calls already on the wire may predate it; share none."""
        self._generation += 1

    @classmethod
    def for_client(cls, ucd: UcdClient) -> ProfileReads:
        reads = cls._per_client.get(ucd)
        if reads is None:
            reads = cls._per_client[ucd] = cls(ucd)
        return reads

    async def fetch(self, ref: UserRef, need: ProfileNeed) -> dict[str, Any] | None:
        for flying, generation, future in self._flights.get(ref, ()):
            if generation == self._generation and flying.covers(need):
                self.shared += 1
                # shield: one waiter being cancelled must not cancel the others' call.
                answer: dict[str, Any] | None = await asyncio.shield(future)
                return answer
        future = asyncio.ensure_future(self._read(ref, need))
        entry = (need, self._generation, future)
        self._flights.setdefault(ref, []).append(entry)

        def landed(done: asyncio.Future[Any]) -> None:
            # Mark the exception retrieved: every waiter may have been cancelled.
            if not done.cancelled():
                done.exception()
            flights = self._flights.get(ref)
            if flights is not None:
                flights.remove(entry)
                if not flights:
                    del self._flights[ref]

        future.add_done_callback(landed)
        answer = await asyncio.shield(future)
        return answer

    async def _read(self, ref: UserRef, need: ProfileNeed) -> dict[str, Any] | None:
        answer = await self._ucd.profile(profile_body(ref, need))
        if answer is not None and limits_may_hide_events(need, answer):
            # Rare: a limited list reached into the window's last second, which the
            # resolvers may trim (loaders.limits_may_hide_events). Waiters share this
            # call, so it must answer the need in full: ask again without limits.
            answer = await self._ucd.profile(profile_body(ref, need.unlimited()))
        return answer
