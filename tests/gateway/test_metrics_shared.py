"""``/metrics`` under ``serve --workers`` (gateway/metrics.py, ``share_between_processes``):
a scrape adds up the files of every process. Here the second process is a real fork of
the test, as the workers are forks of the supervisor; tests/gateway/test_workers_per_process.py
scrapes real workers over HTTP.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import (
    GatewayMetrics,
    process_ended,
    share_between_processes,
    stop_sharing,
)

#: A sample of a scrape: its name and its labels, sorted.
Sample = tuple[str, tuple[tuple[str, str], ...]]
OPERATIONS: Sample = (
    "ucd_gateway_operations_total",
    (("operation", "Q"), ("outcome", "OK"), ("type", "query")),
)
IN_FLIGHT: Sample = ("ucd_gateway_in_flight_requests", ())
LIMIT = "ucd_gateway_in_flight_limit"


class InFlight:
    in_flight = 0
    in_flight_limit = 256


class OpenBreakers:
    def state(self, endpoint: str) -> Literal["closed", "open", "half-open"]:
        return "open"


class CacheCounts:
    reads = 0
    hits = 0


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    share_between_processes(tmp_path)
    try:
        yield tmp_path
    finally:
        stop_sharing()


def scrape(metrics: GatewayMetrics) -> dict[Sample, float]:
    body, _ = metrics.render()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_a_scrape_adds_up_every_process_and_forgets_a_dead_ones_live_values(
    shared: Path,
) -> None:
    admission, cache = InFlight(), CacheCounts()
    metrics = GatewayMetrics(admission)
    metrics.watch_breakers(OpenBreakers())
    metrics.watch_profile_cache(cache)
    child = os.fork()  # before any count, as the supervisor forks its workers
    if child == 0:
        try:
            metrics.on_operation("Q", "query", "OK", 0.01)
            metrics.on_operation("Q", "query", "OK", 0.01)
            metrics.on_call("/api/x", "200", 0.01, 1)
            admission.in_flight = 3
            cache.reads, cache.hits = 10, 1
            metrics.publish()
        finally:
            os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    metrics.on_operation("Q", "query", "OK", 0.01)
    metrics.on_call("/api/x", "200", 0.01, 1)
    admission.in_flight = 2
    cache.reads, cache.hits = 4, 3

    seen = scrape(metrics)
    assert seen[OPERATIONS] == 3
    assert seen[("ucd_gateway_ucd_calls_total", (("endpoint", "/api/x"), ("status", "200")))] == 2
    assert seen[("ucd_gateway_operations_per_ucd_call", ())] == 1.5
    assert seen[IN_FLIGHT] == 5
    reads = "ucd_gateway_profile_cache_reads_total"
    assert (seen[(reads, (("result", "hit"),))], seen[(reads, (("result", "miss"),))]) == (4, 10)
    assert seen[("ucd_gateway_profile_cache_hit_ratio", ())] == 4 / 14
    breaker = "ucd_gateway_ucd_breaker_state"
    assert seen[(breaker, (("endpoint", "/api/x"), ("state", "open")))] == 1
    assert seen[(breaker, (("endpoint", "/api/x"), ("state", "closed")))] == 0

    cache.reads, cache.hits = 6, 4  # published again: only what is new is added
    process_ended(child)
    seen = scrape(metrics)
    assert seen[IN_FLIGHT] == 2  # the dead process's requests no longer count
    assert seen[OPERATIONS] == 3  # its counts do
    assert (seen[(reads, (("result", "hit"),))], seen[(reads, (("result", "miss"),))]) == (5, 11)


async def test_publishing_writes_the_live_values_while_open(shared: Path) -> None:
    admission = InFlight()
    metrics = GatewayMetrics(admission)
    admission.in_flight = 7
    admission.in_flight_limit = 40
    async with metrics.publishing():
        await asyncio.sleep(0)  # the first publication is at once
    # What the files hold, as another worker's scrape reads them (no publication of its own).
    collector = MultiProcessCollector(None, path=str(shared))  # type: ignore[no-untyped-call]
    families = collector.collect()  # type: ignore[no-untyped-call]
    (in_flight,) = [s.value for f in families for s in f.samples if s.name == IN_FLIGHT[0]]
    assert in_flight == 7
    (limit,) = [s.value for f in families for s in f.samples if s.name == LIMIT]
    assert limit == 40  # summed over the workers: what they admit at once


async def test_in_one_process_publishing_does_nothing() -> None:
    metrics = GatewayMetrics(InFlight())
    async with metrics.publishing():
        pass
    process_ended(os.getpid())  # nothing shared: nothing to forget
