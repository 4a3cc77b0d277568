"""``ucd-gateway serve`` with a profiler switched by signals, for ``served_profile.py``.

``python bench/_profiled_serve.py OUT [serve arguments]``: SIGUSR1 starts cProfile,
SIGUSR2 stops it and writes its stats to OUT. So the profile holds the measured requests
alone, not the imports and start-up that ``python -m cProfile`` would count too.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from types import FrameType

from gateway.cli import main

#: CPU time of the serving thread, not wall time: a socket write that wakes the reader
#: on a busy machine (the load generator, the local UCD) would count its wait otherwise.
_profile = cProfile.Profile(time.thread_time)
OUT = "gateway.prof"


def _start(signum: int, frame: FrameType | None) -> None:
    _profile.enable()


def _stop(signum: int, frame: FrameType | None) -> None:
    _profile.disable()
    _profile.dump_stats(OUT)


if __name__ == "__main__":
    OUT = sys.argv[1]
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    sys.exit(main(sys.argv[2:]))
