"""Group commit of single-user writes (E1 upserts, E4 attribute deletes) across requests.

``UpsertCoalescer`` is created once per process (the app's lifespan) and shared by every
request. Each kind of call (an upsert with ``skip_hook`` false, one with it true, an
attribute delete) has its own lane:

- a write that finds its lane idle is sent at once (on the next turn of the event loop,
  so writes of the same tick still share the call);
- writes that arrive while the lane's call is on the wire wait for it to end and then go
  together in the next call: the busier the lane, the bigger its calls, and a lone write
  never waits for a timer (a fixed 5 ms window cost every lone upsert 5 ms);
- a call holds at most 1,000 users and stays under 5,000,000 bytes
  (``gateway/ucd/batching.py``); a full batch is sent at once, even beside a call on the
  wire.

``UCD_GATEWAY_UPSERT_WINDOW_MS`` (default 0) adds an optional linger before an idle
lane's call, for deployments that prefer fewer, bigger calls to latency.

Each caller gets only its own user's outcome, after the UCD answered. Writes of one lane
go out in the order they arrived, and a write is acknowledged only after the call that
carried it succeeded; ``aclose`` sends everything still waiting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.errors import UpstreamOutcomeUnknown, UpstreamUnavailable
from gateway.ucd import deadline as deadlines
from gateway.ucd.batching import (
    MAX_BODY_BYTES,
    MAX_USERS_PER_CALL,
    TOO_BIG,
    Wire,
    wire_bytes,
)
from gateway.ucd.client import UcdClient
from gateway.ucd.envelope import DataEnvelope, UserOutcome
from gateway.ucd.requests import (
    AttributeDeleteRequest,
    AttributeDeleteUser,
    EncodedUser,
    UpsertRequest,
    UpsertUser,
)

__all__ = ["UpsertCoalescer"]

Request = TypeVar("Request", bound=Wire)


@dataclass
class _Pending:
    #: Encoded once, when it was measured, and sent as it is.
    user: EncodedUser
    future: asyncio.Future[UserOutcome]
    #: The caller's operation deadline (gateway/ucd/deadline.py); None outside one.
    deadline: float | None


@dataclass
class _Lane(Generic[Request]):
    """One kind of call: the users waiting for it, and its calls on the wire."""

    #: Builds the lane's request from written users (``request(())`` is the frame).
    request: Callable[[Sequence[EncodedUser]], Request]
    send: Callable[[Request], Awaitable[DataEnvelope]]
    #: The request without users: what every call pays besides its users.
    frame: int
    pending: list[_Pending] = field(default_factory=list)
    #: Bytes of the waiting users, commas between them included.
    used: int = 0
    #: The lane's calls on the wire.
    on_wire: int = 0
    #: The scheduled send of an idle lane (next loop turn, or after the linger).
    timer: asyncio.Handle | None = None

    def fits(self, size: int) -> bool:
        """Whether one more user of ``size`` bytes still fits the waiting call."""
        return (
            len(self.pending) < MAX_USERS_PER_CALL
            and self.frame + self.used + size + (1 if self.pending else 0) <= MAX_BODY_BYTES
        )


#: How long before ``aclose``'s bound a call it sends must end.
_BEFORE_THE_BOUND_S = 0.1


class UpsertCoalescer:
    """Group-commits single-user upserts and attribute deletes into few UCD calls.

    Why: a burst of 200 one-user mutations would otherwise be 200 calls against a
    25,000/min pool (§2.6); with group commit it is one call for the first and one for
    the rest. Users with different ``skip_hook`` never share a call (it is a
    request-level flag). Two users of one call that name the same person are applied in
    order by the UCD (§3.1.4, §3.4), as if sent one after the other.
    """

    def __init__(self, ucd: UcdClient, *, window_ms: float = 0.0) -> None:
        self._linger = max(window_ms, 0.0) / 1000.0
        self._inflight: set[asyncio.Task[None]] = set()
        self._closed = False
        #: Once closing: the instant (``time.monotonic()``) no call may run past.
        self._stop_by: float | None = None
        self._upserts = {
            flag: self._lane(_upsert_request(flag), ucd.upsert) for flag in (False, True)
        }
        self._deletes = self._lane(AttributeDeleteRequest, ucd.delete_attributes)

    @staticmethod
    def _lane(
        request: Callable[[Sequence[EncodedUser]], Request],
        send: Callable[[Request], Awaitable[DataEnvelope]],
    ) -> _Lane[Request]:
        return _Lane(request, send, wire_bytes(request(())))

    async def submit(self, user: UpsertUser, *, skip_hook: bool = False) -> UserOutcome:
        """Queue one E1 user; returns its outcome once the UCD has answered.

        Raises the gateway error of the whole call (e.g. ``UpstreamUnavailable``) when
        the call as a whole failed.
        """
        return await self._submit(self._upserts[skip_hook], EncodedUser.of(user))

    async def delete_attributes(self, user: AttributeDeleteUser) -> UserOutcome:
        """Queue one E4 user; returns its outcome once the UCD has answered."""
        return await self._submit(self._deletes, EncodedUser.of(user))

    async def _submit(self, lane: _Lane[Request], user: EncodedUser) -> UserOutcome:
        if lane.frame + user.size > MAX_BODY_BYTES:
            return TOO_BIG
        if lane.pending and not lane.fits(user.size):
            self._send(lane)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[UserOutcome] = loop.create_future()
        lane.used += user.size + (1 if lane.pending else 0)
        lane.pending.append(_Pending(user, future, deadlines.current()))
        if len(lane.pending) >= MAX_USERS_PER_CALL or self._closed:
            # Full, or shutting down (aclose already sent what waited): send it now.
            self._send(lane)
        elif lane.on_wire == 0 and lane.timer is None:
            # Idle: go on the next loop turn (writes of this tick join), or after the linger.
            lane.timer = (
                loop.call_later(self._linger, self._send, lane)
                if self._linger
                else loop.call_soon(self._send, lane)
            )
        # Else a call is on the wire: its end sends this user with the others waiting.
        return await deadlines.await_shared(future)

    def _send(self, lane: _Lane[Request]) -> None:
        """Put the lane's waiting users on the wire as one call."""
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        pending, lane.pending, lane.used = lane.pending, [], 0
        if not pending:
            return
        lane.on_wire += 1
        task = asyncio.get_running_loop().create_task(self._call(lane, pending))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _call(self, lane: _Lane[Request], pending: list[_Pending]) -> None:
        try:
            await self._deliver(lane, pending)
        finally:
            lane.on_wire -= 1
            # Group commit: what arrived meanwhile goes now, as one call (it already
            # waited a call's length; no linger on top).
            if lane.pending and lane.timer is None:
                self._send(lane)

    async def _deliver(self, lane: _Lane[Request], pending: list[_Pending]) -> None:
        now = time.monotonic()
        # A caller whose deadline passed while it waited was (or is about to be) told the
        # write failed: sending it anyway would write what the caller saw refused.
        late = [p for p in pending if p.deadline is not None and p.deadline <= now]
        for p in late:
            _fail(p.future, UpstreamUnavailable("the write waited past its deadline; not sent"))
        pending = [p for p in pending if not p.future.done()]
        if not pending:
            return
        request = lane.request([p.user for p in pending])
        # The call serves every caller in it, so it runs until the latest of their
        # deadlines; each caller stops waiting at its own (submit). A call sent while
        # closing ends by the close's bound instead, with the client's own precise error.
        deadline = deadlines.latest(p.deadline for p in pending)
        if self._stop_by is not None:
            # A little before the bound, so the client's error, not aclose's cancel, ends it.
            ends_by = self._stop_by - _BEFORE_THE_BOUND_S
            deadline = min(math.inf if deadline is None else deadline, ends_by)
        try:
            # The task has its own copy of the context: this changes no one else's.
            with deadlines.use(deadline):
                envelope = await lane.send(request)
        except Exception as exc:
            for p in pending:
                _fail(p.future, exc)
            return
        except BaseException:
            # Cancelled: aclose gave up on the call, or the loop is shutting down. The
            # request may have reached the UCD, so no caller may hear it was not applied.
            for p in pending:
                _fail(
                    p.future,
                    UpstreamOutcomeUnknown(
                        "the gateway stopped before the UCD answered this write; "
                        "it may or may not have been applied"
                    ),
                )
            raise
        for p, outcome in zip(pending, envelope.split(len(pending)), strict=True):
            if not p.future.done():
                p.future.set_result(outcome)

    async def aclose(self, *, within: float | None = None) -> None:
        """Send everything still waiting and wait for the calls on the wire, for at most
        ``within`` seconds (None: as long as they take).

        Why bounded: the process must stop within 15 s of SIGTERM (gateway/drain.py) even
        against a UCD that never answers. No acknowledged write is lost by giving up, as a
        caller hears of success only once the UCD answered; a call still unanswered at the
        bound is cancelled and its callers get ``UpstreamOutcomeUnknown``. A batch sent
        from here on runs under the bound as its deadline, so the client ends it with its
        own precise error (not sent: unavailable; sent: outcome unknown).
        """
        self._closed = True
        if within is not None:
            # time.monotonic(), the clock of operation deadlines (not the loop's clock).
            self._stop_by = time.monotonic() + max(within, 0.0)
        for upserts in self._upserts.values():
            self._send(upserts)
        self._send(self._deletes)
        while self._inflight:
            left = None if self._stop_by is None else self._stop_by - time.monotonic()
            if left is not None and left <= 0:
                break
            await asyncio.wait(set(self._inflight), timeout=left)
        # A cancelled call's end may send what waited behind it (group commit); those
        # calls run past the bound at once and fail fast, but are cancelled all the same.
        while stuck := set(self._inflight):
            for task in stuck:
                task.cancel()
            await asyncio.wait(stuck)


def _fail(future: asyncio.Future[UserOutcome], exc: BaseException) -> None:
    """Fail a caller's future. Marked as seen: a caller past its deadline stopped waiting
    (``await_shared``), and asyncio would log the unread exception as a bug."""
    if not future.done():
        future.set_exception(exc)
        future.exception()


def _upsert_request(skip_hook: bool) -> Callable[[Sequence[EncodedUser]], UpsertRequest]:
    def request(users: Sequence[EncodedUser]) -> UpsertRequest:
        return UpsertRequest(users, skip_hook=skip_hook)

    return request
