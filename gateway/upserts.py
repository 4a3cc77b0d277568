"""Cross-request coalescing of single-user upserts into one E1 call.

``UpsertCoalescer`` is created once per process (the app's lifespan) and shared by every
request: single-user upserts arriving within a short window go to the UCD as one E1 call;
each caller gets only its own user's outcome, after the UCD answered.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from gateway.errors import UpstreamOutcomeUnknown
from gateway.ucd import deadline as deadlines
from gateway.ucd.batching import MAX_BODY_BYTES, MAX_USERS_PER_CALL, TOO_BIG, wire_bytes
from gateway.ucd.client import UcdClient
from gateway.ucd.envelope import UserOutcome
from gateway.ucd.requests import EncodedUser, UpsertRequest, UpsertUser

__all__ = ["UpsertCoalescer"]


@dataclass
class _Pending:
    #: Encoded once, when it was measured, and sent as it is.
    user: EncodedUser
    future: asyncio.Future[UserOutcome]
    #: The caller's operation deadline (gateway/ucd/deadline.py); None outside one.
    deadline: float | None


@dataclass
class _Batch:
    """Users waiting for the same flush; one batch per distinct ``skip_hook``."""

    pending: list[_Pending] = field(default_factory=list)
    used: int = 0
    timer: asyncio.TimerHandle | None = None


#: How long before ``aclose``'s bound a call it sends must end.
_BEFORE_THE_BOUND_S = 0.1


def _retrieve(future: asyncio.Future[UserOutcome]) -> None:
    if not future.cancelled():
        future.exception()


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
        #: Once closing: the instant (``time.monotonic()``) no call may run past.
        self._stop_by: float | None = None
        # The request without users, per skip_hook: what every call pays besides its users.
        self._frames = {
            flag: wire_bytes(UpsertRequest((), skip_hook=flag)) for flag in (False, True)
        }

    async def submit(self, user: UpsertUser, *, skip_hook: bool = False) -> UserOutcome:
        """Queue one E1 user; returns its outcome once the UCD has answered.

        Raises the gateway error of the whole call (e.g. ``UpstreamUnavailable``) when
        the call as a whole failed.
        """
        encoded = EncodedUser.of(user)
        size = encoded.size
        frame = self._frames[skip_hook]
        if frame + size > MAX_BODY_BYTES:
            return TOO_BIG
        loop = asyncio.get_running_loop()
        future: asyncio.Future[UserOutcome] = loop.create_future()
        # A caller that gave up (its deadline, its request cancelled) no longer awaits the
        # future; without this, the call's error would be logged as never retrieved.
        future.add_done_callback(_retrieve)
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
        batch.pending.append(_Pending(encoded, future, deadlines.current()))
        batch.used += size + (1 if len(batch.pending) > 1 else 0)
        if len(batch.pending) >= MAX_USERS_PER_CALL:
            # Full: waiting longer cannot add anyone to this call.
            self._flush(skip_hook)
        return await deadlines.await_shared(future)

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
        request = UpsertRequest([p.user for p in pending], skip_hook=skip_hook)
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
                envelope = await self._ucd.upsert(request)
        except Exception as exc:
            for p in pending:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        except BaseException:
            # Cancelled: aclose gave up on the call, or the loop is shutting down. The
            # request may have reached the UCD, so no caller may hear it was not applied.
            for p in pending:
                if not p.future.done():
                    p.future.set_exception(
                        UpstreamOutcomeUnknown(
                            "the gateway stopped before the UCD answered this upsert; "
                            "it may or may not have been applied"
                        )
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
        for skip_hook in list(self._batches):
            self._flush(skip_hook)
        while self._inflight:
            left = None if self._stop_by is None else self._stop_by - time.monotonic()
            if left is not None and left <= 0:
                break
            await asyncio.wait(set(self._inflight), timeout=left)
        stuck = set(self._inflight)
        for task in stuck:
            task.cancel()
        if stuck:
            await asyncio.wait(stuck)
