"""How the CLI's servers run their process: uvloop, and a garbage collector that leaves
start-up objects alone.

- **uvloop**: the event loop of ``serve`` and ``local-ucd`` (and so of the embedded
  local UCD). uvicorn picks it itself only when it creates the loop; the CLI creates
  the loop (it runs the app's lifespan around uvicorn), so it asks for uvloop here,
  with its servers accepting every waiting connection per turn (accepting.py).
- **gc.freeze() after start-up**: the modules, the schema, graphql-core's and
  pydantic's tables are ~88,000 tracked objects at ``serve``'s start that live as long
  as the process. Every full collection walked them all (the ~48 ms p99 spikes of
  issue 8); frozen, they sit in a permanent generation no collection visits.
- **thresholds stay CPython's**: a young-generation threshold of 10,000 instead of 700
  measured no different once start-up was frozen (3.10 M against 3.07-3.10 M
  instructions per read, p99 within the noise), so it was not kept.

Measured in ``bench/README.md`` ("Event loop and garbage collector").
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

from gateway.accepting import new_event_loop

__all__ = ["event_loop_factory", "freeze_after_start_up"]


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop the CLI's servers run on (``asyncio.Runner(loop_factory=...)``)."""
    return new_event_loop


def freeze_after_start_up() -> None:
    """Call once the app is built and its lifespan started, before the first request."""
    gc.collect()
    gc.freeze()
