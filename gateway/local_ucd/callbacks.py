"""Error callbacks of E1 (§4.6): unification conflicts POSTed after the commit.

Delivery is best effort and in the background: one task per callback, up to 3 attempts
(:func:`gateway.local_ucd.hooks.post_with_retries`). Pending callbacks live only in memory;
an erasure (§4.9 step 4) discards the ones about the erased profile before they are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import httpx

from gateway.local_ucd.hooks import DELAYS_S, post_with_retries

__all__ = ["CallbackDispatcher"]

_Key = tuple[str, str]  # (partner, insider_id the callback is about)


class CallbackDispatcher:
    """Sends error callbacks without ever delaying an answer."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        delays: Sequence[float] = DELAYS_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self._delays = tuple(delays)
        self._sleep = sleep
        self._pending: dict[_Key, set[asyncio.Task[bool]]] = {}

    @property
    def pending(self) -> int:
        """Callbacks not yet delivered nor given up."""
        return sum(len(tasks) for tasks in self._pending.values())

    def enqueue(self, partner: str, insider_id: str, url: str, payload: dict[str, Any]) -> None:
        """Start delivering ``payload`` to ``url``; call only after the request committed."""
        key = (partner, insider_id)
        task = asyncio.get_running_loop().create_task(
            post_with_retries(self.client, url, payload, delays=self._delays, sleep=self._sleep)
        )
        self._pending.setdefault(key, set()).add(task)
        task.add_done_callback(lambda done: self._forget(key, done))

    def discard(self, partner: str, insider_ids: Iterable[str]) -> None:
        """Drop pending callbacks about these ids (an erased profile and its aliases)."""
        for insider_id in insider_ids:
            for task in self._pending.pop((partner, insider_id), set()):
                task.cancel()

    async def join(self) -> None:
        """Wait until every pending callback was delivered or given up (tests, shutdown)."""
        while self._pending:
            tasks = [task for tasks in self._pending.values() for task in tasks]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel what is still pending: callbacks are not persisted (§4.6)."""
        tasks = [task for tasks in self._pending.values() for task in tasks]
        self._pending.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _forget(self, key: _Key, task: asyncio.Task[bool]) -> None:
        tasks = self._pending.get(key)
        if tasks is None:
            return
        tasks.discard(task)
        if not tasks:
            del self._pending[key]
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log "never retrieved"
