"""Graceful drain: on SIGTERM, stop taking work, finish the work in flight, then stop.

uvicorn's own answer to SIGTERM is to close the listening socket at once and wait for
open connections: ``/readyz`` is never asked again, so a load balancer learns of the
shutdown only from refused connections, and uvicorn then re-raises the signal, which
ends the process before the app's lifespan could flush its coalesced writes.

``DrainingServer`` changes the first SIGTERM (or SIGINT) into a drain:

1. at once, the app's ``Admission`` drains: ``/readyz`` answers 503
   ``{"status": "draining"}`` and every new GraphQL request 503 OVERLOADED, while the
   socket stays open so probes are answered;
2. the GraphQL requests in flight get up to ``drain_timeout`` seconds to finish;
3. then uvicorn's own shutdown runs (``GRACE_AFTER_DRAIN_S`` for what is left, then it
   cancels it), the signal is not re-raised, and the caller closes the app's lifespan:
   the upsert coalescer flushes, and only then does the embedded local UCD stop.

Every step is bounded, whatever ``UCD_GATEWAY_OPERATION_TIMEOUT`` and however the UCD
behaves, so the process is gone within ``EXIT_WITHIN_S`` of the signal: the drain by
``drain_timeout`` (at most 10 s), uvicorn's grace by 1 s, and the final flush by what
is left until ``EXIT_WITHIN_S - EXIT_RESERVE_S`` after the signal (``Admission.stop_by``;
gateway/upserts.py says why no acknowledged write is lost by that).

A second signal during the drain is uvicorn's own: it stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from types import FrameType
from typing import Final

import uvicorn

from gateway.load_shedding import Admission

__all__ = ["EXIT_RESERVE_S", "EXIT_WITHIN_S", "GRACE_AFTER_DRAIN_S", "DrainingServer"]

logger = logging.getLogger("gateway.drain")

#: uvicorn's ``timeout_graceful_shutdown`` after the drain: the drain has already waited
#: for the GraphQL requests, so this is for probes and webhooks on open connections. With
#: ``drain_timeout`` at most 10 s, the process is gone within 15 s.
GRACE_AFTER_DRAIN_S: Final = 1
#: The process is gone this many seconds after the first SIGTERM at the latest.
EXIT_WITHIN_S: Final = 15.0
#: Of those, kept for what follows the final flush: closing the UCD connections, stopping
#: the embedded local UCD, the interpreter's own exit.
EXIT_RESERVE_S: Final = 2.5


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose first SIGTERM or SIGINT drains ``admission`` before it stops."""

    def __init__(
        self, config: uvicorn.Config, *, admission: Admission, drain_timeout: float
    ) -> None:
        config.timeout_graceful_shutdown = GRACE_AFTER_DRAIN_S
        super().__init__(config)
        self._admission = admission
        self._drain_timeout = drain_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._admission.draining or self._loop is None:
            super().handle_exit(sig, frame)
            return
        # A signal handler runs between two bytecodes of the loop's thread: flip the flag
        # here, so the very next request is refused, and start the wait on the loop
        # (call_soon_threadsafe also wakes a loop that sleeps in select()).
        self._admission.start_draining(stop_by=time.monotonic() + EXIT_WITHIN_S - EXIT_RESERVE_S)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        assert self._loop is not None
        self._drain = self._loop.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        admission = self._admission
        logger.info(
            "draining: %d GraphQL requests in flight, waiting up to %g s",
            admission.in_flight,
            self._drain_timeout,
        )
        try:
            async with asyncio.timeout(self._drain_timeout):
                await admission.wait_idle()
            logger.info("drained")
        except TimeoutError:
            logger.warning(
                "%d GraphQL requests still in flight after %g s; stopping anyway",
                admission.in_flight,
                self._drain_timeout,
            )
        self.should_exit = True
