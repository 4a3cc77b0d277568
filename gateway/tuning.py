"""How the CLI's servers run their process: uvloop, and a garbage collector that leaves
start-up objects alone.

- **uvloop**: the event loop of ``serve`` and ``local-ucd`` (and so of the embedded
  local UCD). uvicorn picks it itself only when it creates the loop; the CLI creates
  the loop (it runs the app's lifespan around uvicorn), so it asks for uvloop here.
- **gc.freeze() after start-up**: the modules, the schema, graphql-core's and
  pydantic's tables are millions of objects that live as long as the process. Every
  full collection walked them all (~48 ms each, the p99 spikes of issue 8); frozen,
  they are moved to a permanent generation no collection visits.
- **thresholds**: a request allocates thousands of container objects that die with
  it; at CPython's default (700) the young generation is collected every few requests
  for nothing. A bigger first threshold collects less often for the same result.

Measured in ``bench/README.md`` ("Event loop and garbage collector").
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Final

import uvloop

__all__ = ["GC_THRESHOLDS", "event_loop_factory", "freeze_after_start_up"]

#: gc.set_threshold for the servers: young generation every 10,000 net allocations of
#: containers (CPython's default: 700); the older generations as CPython's defaults.
GC_THRESHOLDS: Final = (10_000, 10, 10)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop the CLI's servers run on (``asyncio.Runner(loop_factory=...)``)."""
    return uvloop.new_event_loop


def freeze_after_start_up() -> None:
    """Call once the app is built and its lifespan started, before the first request."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
