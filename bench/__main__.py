"""Run every benchmark module's ``run()`` and print its markdown tables.

python -m bench                      # every module, in name order
python -m bench local_ucd_scale      # only the named modules
BENCH_USERS=4000 python -m bench     # a quick, small local UCD run
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import bench


def _modules() -> list[str]:
    return sorted(
        info.name for info in pkgutil.iter_modules(bench.__path__) if not info.name.startswith("_")
    )


def _machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_kib / 2**20:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    available = _modules()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "modules", nargs="*", metavar="module", help=f"default: all of {', '.join(available)}"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    names = args.modules or _modules()
    print(f"# Benchmarks — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print(f"Machine: {_machine()}.")
    for name in names:
        print(f"\n## {name}\n", flush=True)
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        module.run()
        print(f"\n_{name} took {time.perf_counter() - started:.0f} s._", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
