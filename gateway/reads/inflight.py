"""In-flight sharing of profile reads across concurrent GraphQL requests.

While a profile call for a user is on the wire, a request for the same user whose need
that call covers waits for the same answer instead of sending its own. One
``ProfileReads`` per process, made by the app's lifespan and handed to every request's
context (``gateway.api.context.build_context``).
"""

from __future__ import annotations

import asyncio

from gateway.reads.need import ProfileNeed, limits_may_hide_events
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.client import UcdClient
from gateway.ucd.deadline import await_shared
from gateway.ucd.requests import UserRef

__all__ = ["ProfileReads"]


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

    A call carries a ``tag`` (the profile cache's snapshot of the shared counter, taken
    before the call was sent; 0 outside the cache): ``fetch_tagged`` answers with the tag
    of the call it used, so an answer joined from an older call is stored as that old.

    One per process: the app's lifespan makes it and every request's context receives it.
    """

    def __init__(self, ucd: UcdClient) -> None:
        self._ucd = ucd
        self._flights: dict[
            UserRef, list[tuple[ProfileNeed, int, int, asyncio.Future[ProfileAnswer | None]]]
        ] = {}
        self._generation = 0
        self.shared = 0  # reads answered by another request's call (for tests and metrics)

    @property
    def on_the_wire(self) -> int:
        """Users whose profile call is on the wire now (a test waits for none before it
        sends a request whose calls it counts)."""
        return len(self._flights)

    def invalidate(self) -> None:
        """A write was applied: calls already on the wire may predate it; share none."""
        self._generation += 1

    async def fetch(self, ref: UserRef, need: ProfileNeed) -> ProfileAnswer | None:
        answer, _ = await self.fetch_tagged(ref, need, 0)
        return answer

    async def fetch_tagged(
        self, ref: UserRef, need: ProfileNeed, tag: int
    ) -> tuple[ProfileAnswer | None, int]:
        """The answer, and the tag of the call it came from (``tag`` when it is this one's)."""
        for flying, generation, flying_tag, future in self._flights.get(ref, ()):
            if generation == self._generation and flying.covers(need):
                self.shared += 1
                # Shielded: this waiter giving up must not cancel the others' call. The
                # call runs under the deadline of the request that sent it (the task
                # inherits its context); this one stops at its own.
                answer: ProfileAnswer | None = await await_shared(future)
                return answer, min(tag, flying_tag)
        future = asyncio.ensure_future(self._read(ref, need))
        entry = (need, self._generation, tag, future)
        self._flights.setdefault(ref, []).append(entry)

        def landed(done: asyncio.Future[ProfileAnswer | None]) -> None:
            # Mark the exception retrieved: every waiter may have been cancelled.
            if not done.cancelled():
                done.exception()
            flights = self._flights.get(ref)
            if flights is not None:
                flights.remove(entry)
                if not flights:
                    del self._flights[ref]

        future.add_done_callback(landed)
        answer = await await_shared(future)
        return answer, tag

    async def _read(self, ref: UserRef, need: ProfileNeed) -> ProfileAnswer | None:
        answer = await self._ucd.profile(need.request(ref))
        if answer is not None and limits_may_hide_events(need, answer):
            # Rare: a limited list reached into the window's last second, which the
            # resolvers may trim (need.limits_may_hide_events). Waiters share this
            # call, so it must answer the need in full: ask again without limits.
            answer = await self._ucd.profile(need.unlimited().request(ref))
        return answer
