"""The gateway's Prometheus metrics: one registry per app, served at ``/metrics``.

``GatewayMetrics`` owns a ``CollectorRegistry`` of its own (not prometheus-client's
global one), so two apps in one process (tests) count apart. It is fed from three
places, each a small seam:

* operations: gateway/operations.py's schema extension calls ``on_operation``;
* UCD calls: it is a ``UcdCallObserver`` (gateway/ucd/observers.py) of the UcdClient;
* live values read at scrape time: requests in flight (``Admission``), the state of
  each endpoint's circuit breaker (``watch_breakers``) and the profile cache's reads and
  hits (``watch_profile_cache``, when the cache is on).

Labels hold no personal data and no query text, and every label has a bounded set of
values: an operation's name is the document's own (a GraphQL name), and only the first
``MAX_OPERATION_NAMES`` distinct names of the process get a label of their own
(``OperationNames``); endpoints are the UCD's paths; statuses are HTTP statuses or
``timeout``/``network_error``; outcomes are the codes of gateway/error_codes.py or
``OK``.

The coalescing ratio: ``ucd_gateway_operations_total`` over ``ucd_gateway_ucd_calls_total``
(``sum(rate(...))`` of each, in PromQL); ``ucd_gateway_operations_per_ucd_call`` is the
same ratio since the process started, for a quick look.

**``serve --workers N``**: a scrape reaches whichever worker the kernel gives the
connection, so every worker must answer for all of them. The command line calls
``share_between_processes(directory)`` before it builds the app and forks the workers:
prometheus-client's multiprocess mode, where every worker's counters and histograms live
in memory-mapped files of its own under the directory, and a scrape adds up the files of
every worker (also of a worker that died: its counts stay, as a counter must). The live
values are published by each worker into such files too, every ``PUBLISH_EVERY_S`` and
at each of its scrapes: requests in flight added up over the live workers, each
circuit's state as the most alarmed worker sees it, the cache's reads as counters. The
supervisor tells the files of a dead worker's live values to go (``process_ended``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Final, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "ANONYMOUS",
    "MAX_OPERATION_NAMES",
    "OTHER",
    "CacheCounts",
    "GatewayMetrics",
    "OperationNames",
    "metrics_endpoint",
    "process_ended",
    "share_between_processes",
    "stop_sharing",
]

#: Distinct operation names that get a label of their own; later names are ``OTHER``.
MAX_OPERATION_NAMES: Final = 100
#: The label of an operation without a name.
ANONYMOUS: Final = "anonymous"
#: The label of every operation whose name is not counted on its own: past the first
#: ``MAX_OPERATION_NAMES``, longer than 64 characters, or not a name of its document
#: (a document that did not parse, an ``operationName`` it does not define).
OTHER: Final = "other"

_NAME: Final = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
_BREAKER_STATES: Final = ("closed", "open", "half-open")

#: Name and help of the values read at scrape time, alike in one process and in the
#: multiprocess files of serve --workers.
_IN_FLIGHT: Final = ("ucd_gateway_in_flight_requests", "GraphQL requests being served now.")
_IN_FLIGHT_LIMIT: Final = (
    "ucd_gateway_in_flight_limit",
    "GraphQL requests admitted at once now: UCD_GATEWAY_MAX_IN_FLIGHT, lowered while the "
    "event loop runs late.",
)
_BREAKER: Final = (
    "ucd_gateway_ucd_breaker_state",
    "1 for the state each UCD endpoint's circuit is in (closed, open, half-open).",
)
_CACHE_READS: Final = (
    "ucd_gateway_profile_cache_reads",
    "Profile reads through the cache: hit (answered without a UCD call) or miss.",
)
_PER_CALL: Final = (
    "ucd_gateway_operations_per_ucd_call",
    "GraphQL operations per UCD call since start (coalescing; 0 before any call).",
)
_HIT_RATIO: Final = (
    "ucd_gateway_profile_cache_hit_ratio",
    "Profile reads answered from the cache, of all, since start (0 before any).",
)


def _gauge(name_help: tuple[str, str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(*name_help)
    family.add_metric([], value)
    return family


#: Seconds: a cached read takes well under a millisecond, a UCD call tens of them, and
#: the operation deadline is 10 s by default.
_SECONDS_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Users per E1/E4 call: 1 (a single write), coalesced writes, up to the UCD's 1,000.
_USERS_BUCKETS: Final = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)


#: Seconds between two publications of a worker's live values (serve --workers).
PUBLISH_EVERY_S: Final = 1.0
#: The variable prometheus-client's multiprocess mode reads its directory from.
_MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
#: The directory of every worker's metric files; None: one process, one registry.
_shared: Path | None = None


def share_between_processes(directory: Path) -> None:
    """Count in files under ``directory`` from now on (see the module doc): called by the
    process that forks the workers, before any ``GatewayMetrics`` is made."""
    global _shared
    os.environ[_MULTIPROC_DIR] = str(directory)  # prometheus-client reads it from there
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _shared = directory


def stop_sharing() -> None:
    """Back to one registry per app (for tests: metrics made from now on)."""
    global _shared
    os.environ.pop(_MULTIPROC_DIR, None)
    values.ValueClass = values.MutexValue
    _shared = None


def process_ended(pid: int) -> None:
    """A worker is gone: its live values no longer count (its counters still do)."""
    if _shared is not None:
        mark_process_dead(pid, str(_shared))  # type: ignore[no-untyped-call]


class InFlight(Protocol):
    """What the metrics read of ``gateway.load_shedding.Admission``."""

    in_flight: int

    @property
    def in_flight_limit(self) -> int: ...


class BreakerStates(Protocol):
    """What the metrics read of the circuit breakers (``LocalCircuitBreakers``)."""

    def state(self, endpoint: str) -> Literal["closed", "open", "half-open"]: ...


class CacheCounts(Protocol):
    """What the metrics read of ``gateway.reads.cache.ProfileCache``: profile reads that
    went through it, and those of them answered without a UCD call."""

    reads: int
    hits: int


class OperationNames:
    """The bounded set of operation-name labels (see ``OTHER``)."""

    def __init__(self, limit: int = MAX_OPERATION_NAMES) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def label(self, name: str | None, *, in_document: bool) -> str:
        if name is None:
            return ANONYMOUS
        if not in_document or not _NAME.fullmatch(name):
            return OTHER
        if name not in self._seen:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(name)
        return name


class GatewayMetrics:
    """The metrics of one app; ``render()`` is the body of ``/metrics``."""

    def __init__(self, admission: InFlight, *, max_operation_names: int = MAX_OPERATION_NAMES):
        self.registry = CollectorRegistry()
        self.names = OperationNames(max_operation_names)
        registry = self.registry
        self._operations = Counter(
            "ucd_gateway_operations",
            "GraphQL operations by name, type and outcome (OK or the first error's code).",
            ["operation", "type", "outcome"],
            registry=registry,
        )
        self._operation_seconds = Histogram(
            "ucd_gateway_operation_duration_seconds",
            "Time from parse to result of GraphQL operations.",
            ["operation", "type"],
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self._ucd_calls = Counter(
            "ucd_gateway_ucd_calls",
            "Calls sent to the UCD (retries included) by endpoint and status.",
            ["endpoint", "status"],
            registry=registry,
        )
        self._ucd_seconds = Histogram(
            "ucd_gateway_ucd_call_duration_seconds",
            "Time of UCD calls, from sending to the end of the answer.",
            ["endpoint"],
            buckets=_SECONDS_BUCKETS,
            registry=registry,
        )
        self._ucd_users = Histogram(
            "ucd_gateway_ucd_call_users",
            "Users carried by one UCD call (E1/E4 batches; 1 for a single-user call).",
            ["endpoint"],
            buckets=_USERS_BUCKETS,
            registry=registry,
        )
        # The labelled series of each label set, looked up once: prometheus-client's
        # ``labels()`` validates and locks on every call, several times the cost of the
        # increment itself. The label sets are bounded, so these are too.
        self._operation_series: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._call_series: dict[tuple[str, str], tuple[Counter, Histogram, Histogram]] = {}
        self._admission = admission
        self._breakers: BreakerStates | None = None
        self._cache: CacheCounts | None = None
        self._endpoints: set[str] = set()
        self._operation_count = 0
        self._call_count = 0
        registry.register(_LiveValues(self))
        self._shared = _shared
        if self._shared is not None:
            self._published = _Published()

    def watch_breakers(self, breakers: BreakerStates) -> None:
        """Report the state of ``breakers``' circuits (built later than the metrics)."""
        self._breakers = breakers

    def watch_profile_cache(self, cache: CacheCounts) -> None:
        """Report the profile cache's hits and misses (built later than the metrics)."""
        self._cache = cache

    def on_operation(self, operation: str, kind: str, outcome: str, seconds: float) -> None:
        """One GraphQL operation is over; ``operation`` is a label of ``self.names``."""
        self._operation_count += 1
        key = (operation, kind, outcome)
        series = self._operation_series.get(key)
        if series is None:
            series = self._operation_series[key] = (
                self._operations.labels(operation, kind, outcome),
                self._operation_seconds.labels(operation, kind),
            )
        series[0].inc()
        series[1].observe(seconds)

    def on_call(self, endpoint: str, status: str, seconds: float, users: int) -> None:
        """A ``UcdCallObserver``: one UCD call is over."""
        self._call_count += 1
        key = (endpoint, status)
        series = self._call_series.get(key)
        if series is None:
            self._endpoints.add(endpoint)
            series = self._call_series[key] = (
                self._ucd_calls.labels(endpoint, status),
                self._ucd_seconds.labels(endpoint),
                self._ucd_users.labels(endpoint),
            )
        series[0].inc()
        series[1].observe(seconds)
        if users > 0:
            series[2].observe(users)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The body and content type for a scraper that sends ``accept``: the Prometheus
        text format, or OpenMetrics when asked for (prometheus-client's negotiation)."""
        encode, content_type = choose_encoder(accept)
        if self._shared is None:
            return encode(self.registry), content_type
        self.publish()  # this worker's own live values, as of now
        collector = MultiProcessCollector(None, path=str(self._shared))  # type: ignore[no-untyped-call]
        families: list[Metric] = list(collector.collect())  # type: ignore[no-untyped-call]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families([*families, *self._ratios(families)]))
        return encode(registry), content_type

    @contextlib.asynccontextmanager
    async def publishing(self) -> AsyncIterator[None]:
        """While open, publish this worker's live values every ``PUBLISH_EVERY_S`` (only
        under serve --workers; the app's lifespan opens it)."""
        if self._shared is None:
            yield
            return

        async def publish_forever() -> None:
            while True:
                self.publish()
                await asyncio.sleep(PUBLISH_EVERY_S)

        task = asyncio.create_task(publish_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def publish(self) -> None:
        """Write this worker's live values into its files (serve --workers)."""
        published = self._published
        published.in_flight.set(self._admission.in_flight)
        published.in_flight_limit.set(self._admission.in_flight_limit)
        for endpoint, state, value in self._breaker_states():
            published.breakers.labels(endpoint, state).set(value)
        if self._cache is not None:
            hits, misses = self._cache.hits, self._cache.reads - self._cache.hits
            published.cache_reads.labels("hit").inc(hits - published.hits)
            published.cache_reads.labels("miss").inc(misses - published.misses)
            published.hits, published.misses = hits, misses

    def _ratios(self, families: Iterable[Metric]) -> Iterator[Metric]:
        """The ratios of the live values, over every worker's counts."""
        totals: dict[tuple[str, str], float] = {}
        for family in families:
            for sample in family.samples:
                key = (sample.name, sample.labels.get("result", ""))
                totals[key] = totals.get(key, 0.0) + sample.value
        operations = totals.get(("ucd_gateway_operations_total", ""), 0.0)
        calls = totals.get(("ucd_gateway_ucd_calls_total", ""), 0.0)
        yield _gauge(_PER_CALL, operations / calls if calls else 0)
        if self._cache is not None:
            hits = totals.get(("ucd_gateway_profile_cache_reads_total", "hit"), 0.0)
            reads = hits + totals.get(("ucd_gateway_profile_cache_reads_total", "miss"), 0.0)
            yield _gauge(_HIT_RATIO, hits / reads if reads else 0)

    def _breaker_states(self) -> Iterator[tuple[str, str, int]]:
        """``(endpoint, state, 1 or 0)`` for every endpoint called and every state."""
        if self._breakers is None:
            return
        for endpoint in sorted(self._endpoints):
            now = self._breakers.state(endpoint)
            for state in _BREAKER_STATES:
                yield endpoint, state, 1 if state == now else 0

    def _live(self) -> Iterator[Metric]:
        yield _gauge(_IN_FLIGHT, self._admission.in_flight)
        yield _gauge(_IN_FLIGHT_LIMIT, self._admission.in_flight_limit)
        calls = self._call_count
        yield _gauge(_PER_CALL, self._operation_count / calls if calls else 0)
        if self._breakers is not None:
            breaker = GaugeMetricFamily(*_BREAKER, labels=["endpoint", "state"])
            for endpoint, state, value in self._breaker_states():
                breaker.add_metric([endpoint, state], value)
            yield breaker
        if self._cache is not None:
            reads, hits = self._cache.reads, self._cache.hits
            counted = CounterMetricFamily(*_CACHE_READS, labels=["result"])
            counted.add_metric(["hit"], hits)
            counted.add_metric(["miss"], reads - hits)
            yield counted
            yield _gauge(_HIT_RATIO, hits / reads if reads else 0)


class _Published:
    """A worker's live values as files of the multiprocess mode (serve --workers)."""

    def __init__(self) -> None:
        self.in_flight = Gauge(
            *_IN_FLIGHT,
            multiprocess_mode="livesum",
            registry=None,
        )
        # The sum: what all workers admit at once.
        self.in_flight_limit = Gauge(
            *_IN_FLIGHT_LIMIT,
            multiprocess_mode="livesum",
            registry=None,
        )
        self.breakers = Gauge(
            *_BREAKER,
            ["endpoint", "state"],
            multiprocess_mode="livemax",
            registry=None,
        )
        self.cache_reads = Counter(
            *_CACHE_READS,
            ["result"],
            registry=None,
        )
        #: What of the cache's counts is in the files already.
        self.hits = 0
        self.misses = 0


class _Families:
    """A collector of families collected before (a scrape's, serve --workers)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class _LiveValues:
    """A prometheus-client collector of the values read at scrape time."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics._live()


def metrics_endpoint(metrics: GatewayMetrics) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``: the registry in Prometheus' text format."""

    async def endpoint(request: Request) -> Response:
        body, content_type = metrics.render(request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    return endpoint
