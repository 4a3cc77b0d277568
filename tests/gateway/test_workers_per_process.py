"""What each worker of ``serve --workers N`` has of its own, over HTTP on real processes:

* the drain on the supervisor's SIGTERM: every worker's ``/readyz`` says 503 while its
  writes in flight finish;
* request ids: each worker makes its own (a prefix of its own);
* callers: the API keys file, read before the fork, and the JWT key set, fetched by each
  worker; a key's rate limit is one count in Redis for all of them;
* the audit trail: every worker's lines land whole in the one file;
* the profile cache: one in Redis for all, read-your-writes from one worker to another;
* tracing: a tracer provider per worker, made by its lifespan (the supervisor forks with
  no exporter thread);
* the loop-lag shedder: each worker watches its own event loop; one kept busy by batches
  of uncached documents sheds, the other serves.

Which worker answers a connection is read from the kernel (tests/gateway/served_workers.py).
"""

from __future__ import annotations

import http.client
import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.auth.api_keys import sha256_hex
from tests.gateway.auth.jwks_server import AUDIENCE, ISSUER, serve_jwks
from tests.gateway.otlp_receiver import OtlpReceiver, serve_otlp
from tests.gateway.processes import local_ucd
from tests.gateway.redis_server import RedisServer
from tests.gateway.served_workers import (
    children_of,
    close_all,
    connection_to,
    get,
    per_worker,
    post,
    serving_workers,
)

KEY = "ucdg_test-key-of-the-workers"  # a test credential, not a secret


@pytest.fixture(scope="module")
def ucd_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_ucd(tmp_path_factory.mktemp("workers-ucd")) as url:
        yield url


def base_settings(ucd_url: str, redis: RedisServer, tmp_path: Path) -> dict[str, str]:
    return {
        "UCD_GATEWAY_UCD_BASE_URL": ucd_url,
        "UCD_GATEWAY_REDIS_URL": redis.url,
        "UCD_GATEWAY_LOCAL_UCD_DATA_DIR": str(tmp_path / "data"),
    }


def upsert(uuid: str) -> str:
    return (
        f'mutation {{ upsertUsers(input: {{users: [{{key: {{uuid: "{uuid}"}}, '
        'attributes: {name: "Wanda"}}]}) { successCount failureCount } }'
    )


# --- the drain ----------------------------------------------------------------------------


#: Each write waits this long in its worker's upsert coalescer: the operation in flight.
WINDOW_MS = 4000


def test_the_supervisors_sigterm_drains_every_worker_readyz_503_and_their_writes_finish(
    ucd_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = base_settings(ucd_url, redis_server, tmp_path)
    settings["UCD_GATEWAY_UPSERT_WINDOW_MS"] = str(WINDOW_MS)
    log = tmp_path / "serve.log"
    with serving_workers(settings, log) as served:
        # Per worker: one connection for a write that is in flight, one for the probes.
        connections = per_worker(served, served.workers, count=2)
        assert set(connections) == served.workers
        answers: dict[int, tuple[int, Any]] = {}

        def write(pid: int, connection: http.client.HTTPConnection) -> None:
            status, answer = post(connection, upsert(f"u-drain-{pid}"))
            answers[pid] = (status, answer.get("data"))

        writers = [
            threading.Thread(target=write, args=(pid, mine[0])) for pid, mine in connections.items()
        ]
        try:
            for pid, (_, probe) in connections.items():
                assert get(probe, "/readyz") == (200, {"status": "ready"}), pid
            for writer in writers:
                writer.start()
            time.sleep(1.5)  # well inside the writes' 4 s window: both are in flight
            signalled = time.monotonic()
            served.supervisor.send_signal(signal.SIGTERM)
            for pid, (_, probe) in connections.items():
                # The supervisor passes the signal on within moments; the probe asks again
                # until its worker has it (the writes keep every worker draining for 2 s).
                while (ready := get(probe, "/readyz"))[0] == 200:
                    assert time.monotonic() - signalled < 2, pid
                    time.sleep(0.02)
                assert ready == (503, {"status": "draining"}), pid
                status, refused = post(probe, "{ __typename }")
                assert status == 503, refused
                assert refused["errors"][0]["extensions"]["code"] == "OVERLOADED"
            for writer in writers:
                writer.join(timeout=15)
            # Each worker's write was answered, as accepted, after the signal.
            assert answers == {
                pid: (200, {"upsertUsers": {"successCount": 1, "failureCount": 0}})
                for pid in served.workers
            }
            assert served.supervisor.wait(timeout=15) == 0
            assert time.monotonic() - signalled < 15
        finally:
            close_all(connections)
    text = log.read_text()
    # A line is "<time> INFO gateway.drain <request id>: <message>".
    assert len(re.findall(r" gateway\.drain .*: draining: 1 GraphQL requests in flight", text)) == 2
    assert len(re.findall(r" gateway\.drain .*: drained$", text, re.MULTILINE)) == 2


# --- request ids ------------------------------------------------------------------------


def test_every_worker_makes_request_ids_of_its_own(
    ucd_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    with serving_workers(
        base_settings(ucd_url, redis_server, tmp_path), tmp_path / "log"
    ) as served:
        connections = per_worker(served, served.workers)
        made: dict[int, list[str]] = {}
        try:
            for pid, (connection,) in connections.items():
                for _ in range(3):
                    connection.request("GET", "/healthz")
                    response = connection.getresponse()
                    response.read()
                    made.setdefault(pid, []).append(response.headers["x-request-id"])
        finally:
            close_all(connections)
    a, b = made.values()
    # A made id is its process's random prefix and a count: forked workers must not
    # share the prefix, or their ids (in every log and audit line) would repeat.
    assert {i[:16] for i in a}.isdisjoint({i[:16] for i in b}), made
    assert len(set(a + b)) == 6


# --- metrics ----------------------------------------------------------------------------

#: A sample of a scrape: its name and its labels, sorted.
Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(connection: http.client.HTTPConnection) -> dict[Sample, float]:
    """``/metrics`` on this connection: each sample's value by its name and label values."""
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.read().decode())
        for sample in family.samples
    }


def test_every_worker_answers_metrics_for_all_of_them_and_a_dead_ones_counts_stay(
    ucd_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    operations = (
        "ucd_gateway_operations_total",
        (("operation", "Count"), ("outcome", "OK"), ("type", "query")),
    )
    with serving_workers(
        base_settings(ucd_url, redis_server, tmp_path), tmp_path / "log"
    ) as served:
        connections = per_worker(served, served.workers)
        (a,), (b,) = connections.values()
        try:
            for connection, times in ((a, 3), (b, 2)):
                for _ in range(times):
                    status, answer = post(connection, "query Count { __typename }")
                    assert status == 200, answer
            for connection in (a, b):  # whichever worker is asked answers for both
                seen = scrape(connection)
                assert seen[operations] == 5
                assert seen[("ucd_gateway_in_flight_requests", ())] == 0  # a sum, none now
                # Over both workers' counts (each asked the UCD once at start).
                calls = sum(
                    v for (name, _), v in seen.items() if name == "ucd_gateway_ucd_calls_total"
                )
                assert calls == 2
                assert seen[("ucd_gateway_operations_per_ucd_call", ())] == 5 / 2
        finally:
            close_all(connections)
        victim = min(served.workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(children_of(served.supervisor.pid) - {victim}) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        connection = served.connect()
        try:
            assert scrape(connection)[operations] == 5  # the dead worker's counts stay
        finally:
            connection.close()


# --- callers ------------------------------------------------------------------------------


def test_every_worker_takes_the_keys_file_and_fetches_the_jwt_key_set_itself(
    ucd_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    keys = tmp_path / "api-keys.toml"
    keys.write_text(
        f'[[keys]]\nid = "workers"\nsha256 = "{sha256_hex(KEY)}"\nscopes = ["profile:read"]\n'
    )
    with serve_jwks() as jwks:
        issuer = jwks.issuer()
        settings = base_settings(ucd_url, redis_server, tmp_path) | {
            "UCD_GATEWAY_API_KEYS_FILE": str(keys),
            "UCD_GATEWAY_JWT_JWKS_URL": issuer.jwks_url,
            "UCD_GATEWAY_JWT_ISSUER": ISSUER,
            "UCD_GATEWAY_JWT_AUDIENCE": AUDIENCE,
        }
        with serving_workers(settings, tmp_path / "serve.log") as served:
            connections = per_worker(served, served.workers)
            try:
                assert issuer.fetches == 0  # the supervisor builds the app, fetches nothing
                for pid, (connection,) in connections.items():
                    status, answer = post(connection, "{ __typename }")
                    assert status == 401, (pid, answer)
                    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
                    wrong = {"Authorization": "Bearer ucdg_not-a-key"}
                    assert post(connection, "{ __typename }", wrong)[0] == 401
                    for credential in (KEY, issuer.token("profile:read")):
                        bearer = {"Authorization": f"Bearer {credential}"}
                        status, answer = post(connection, "{ __typename }", bearer)
                        assert (status, answer["data"]) == (200, {"__typename": "Query"}), pid
                # Each worker fetched the key set for its first JWT, once.
                assert issuer.fetches == len(served.workers) == 2
            finally:
                close_all(connections)


def test_a_keys_rate_limit_is_one_budget_across_the_workers(
    ucd_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    key_id = f"limited-{tmp_path.name}"  # the session's Redis is shared: a count of its own
    keys = tmp_path / "api-keys.toml"
    keys.write_text(
        f'[[keys]]\nid = "{key_id}"\nsha256 = "{sha256_hex(KEY)}"\n'
        'scopes = ["profile:read"]\nrate_limit = "4/hour"\n'
    )
    settings = base_settings(ucd_url, redis_server, tmp_path) | {
        "UCD_GATEWAY_API_KEYS_FILE": str(keys)
    }
    bearer = {"Authorization": f"Bearer {KEY}"}
    with serving_workers(settings, tmp_path / "serve.log") as served:
        connections = per_worker(served, served.workers)
        try:
            mine = [connection for (connection,) in connections.values()]
            # Two operations on each worker: four in all, the key's limit.
            for connection in mine * 2:
                assert post(connection, "{ __typename }", bearer)[0] == 200
            # Per process each would have two left; shared, none is.
            for connection in mine:
                status, answer = post(connection, "{ __typename }", bearer)
                assert status == 429, answer
                assert answer["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        finally:
            close_all(connections)


def test_every_workers_audit_lines_land_whole_in_the_one_file(
    ucd_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    trail = tmp_path / "audit.jsonl"
    settings = base_settings(ucd_url, redis_server, tmp_path) | {
        "UCD_GATEWAY_AUDIT_LOG": str(trail)
    }
    with serving_workers(settings, tmp_path / "serve.log") as served:
        connections = per_worker(served, served.workers)
        try:
            for n in range(3):  # interleaved: worker A, worker B, A, B, ...
                for pid, (connection,) in connections.items():
                    status, answer = post(connection, upsert(f"u-audit-{pid}-{n}"))
                    assert status == 200, answer
        finally:
            close_all(connections)
    lines = [orjson.loads(line) for line in trail.read_bytes().splitlines()]
    # An attempt and an outcome line for each of the six mutations, none torn or lost.
    assert (
        sorted((line["phase"], line["outcome"]) for line in lines)
        == [("attempt", "attempted")] * 6 + [("outcome", "ok")] * 6
    )
    assert {line["field"] for line in lines} == {"upsertUsers"}


# --- the profile cache ----------------------------------------------------------------


def test_the_profile_cache_is_one_for_the_workers_and_a_write_on_one_is_read_on_the_other(
    ucd_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = base_settings(ucd_url, redis_server, tmp_path) | {
        "UCD_GATEWAY_PROFILE_CACHE_TTL": "60"
    }
    uuid = f"u-cache-{tmp_path.name}"
    read = f'{{ user(key: {{uuid: "{uuid}"}}) {{ name }} }}'

    def write(connection: http.client.HTTPConnection, name: str) -> None:
        status, answer = post(connection, upsert(uuid).replace("Wanda", name))
        assert (status, answer["data"]["upsertUsers"]["failureCount"]) == (200, 0), answer

    def name_and_hits(connection: http.client.HTTPConnection) -> tuple[str, int]:
        status, answer = post(connection, read)
        assert status == 200, answer
        hits = answer["extensions"]["cost"]["ucdCalls"].get("cacheHits", 0)
        return answer["data"]["user"]["name"], hits

    with serving_workers(settings, tmp_path / "serve.log") as served:
        connections = per_worker(served, served.workers)
        (a,), (b,) = connections.values()
        try:
            write(a, "One")
            assert name_and_hits(b) == ("One", 0)  # B reads the UCD and fills the cache
            assert name_and_hits(a) == ("One", 1)  # A finds what B cached
            write(b, "Two")  # B invalidates before it answers, for A too
            assert name_and_hits(a) == ("Two", 0)
            assert name_and_hits(b) == ("Two", 1)
        finally:
            close_all(connections)


# --- tracing ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    with serve_otlp() as receiver:
        yield receiver


def threads_of(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def test_every_worker_exports_its_own_spans_and_the_supervisor_forks_without_threads(
    ucd_url: str, redis_server: RedisServer, otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    settings = base_settings(ucd_url, redis_server, tmp_path) | {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # the SDK's own: export every 100 ms, not 5 s
    }
    with serving_workers(settings, tmp_path / "serve.log") as served:
        # No exporter thread in the process that forks (fork keeps only the caller's).
        assert threads_of(served.supervisor.pid) == 1
        connections = per_worker(served, served.workers)
        trace_of: dict[int, str] = {}
        try:
            for n, (pid, (connection,)) in enumerate(sorted(connections.items())):
                trace_id = f"{n + 1:032x}"
                trace_of[pid] = trace_id
                traceparent = f"00-{trace_id}-b7ad6b7169203331-01"
                query = 'query Workers { user(key: {uuid: "u-traced"}) { name } }'
                status, answer = post(connection, query, {"traceparent": traceparent})
                assert status == 200, answer
        finally:
            close_all(connections)
        wanted = {"POST /graphql", "query Workers"}
        deadline = time.monotonic() + 15
        while True:
            names = {
                trace_id: {s.name for _, s in otlp_receiver.spans() if s.trace_id.hex() == trace_id}
                for trace_id in trace_of.values()
            }
            if all(wanted <= seen for seen in names.values()):
                break
            assert time.monotonic() < deadline, names
            time.sleep(0.1)
        served.supervisor.send_signal(signal.SIGTERM)
        assert served.supervisor.wait(timeout=20) == 0


# --- loop lag -----------------------------------------------------------------------------


#: Operations per hogging batch, each a document of its own (no cache helps), and the
#: limit: one batch keeps a loop busy far longer than that on any machine.
HOG_OPERATIONS = 200
LAG_LIMIT_MS = 20
JSON = {"Content-Type": "application/json"}


def hog_batch(first: int) -> bytes:
    aliases = " ".join(f"a{n}: __typename" for n in range(40))
    return orjson.dumps(
        [{"query": f"query H{first + n} {{ {aliases} }}"} for n in range(HOG_OPERATIONS)]
    )


def test_a_worker_whose_loop_is_behind_sheds_while_the_other_serves(
    ucd_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = base_settings(ucd_url, redis_server, tmp_path) | {
        "UCD_GATEWAY_MAX_LOOP_LAG_MS": str(LAG_LIMIT_MS),
        "UCD_GATEWAY_MAX_BATCH": str(HOG_OPERATIONS),
    }
    with serving_workers(settings, tmp_path / "serve.log") as served:
        connections = per_worker(served, served.workers, count=3)
        busy, idle = sorted(connections)
        stop = threading.Event()
        numbers = itertools.count(step=HOG_OPERATIONS)

        def hog(connection: http.client.HTTPConnection) -> None:
            """Batches back to back; a refused one may end its connection (its body
            unread), and the next goes on a new one to the same worker."""
            try:
                while not stop.is_set():
                    try:
                        connection.request("POST", "/graphql", hog_batch(next(numbers)), JSON)
                        connection.getresponse().read()
                    except (http.client.HTTPException, OSError):
                        connection.close()
                        connection = connection_to(served, busy)
            finally:
                connection.close()

        hogs = [threading.Thread(target=hog, args=(c,)) for c in connections[busy][1:]]
        refusal: dict[str, Any] | None = None
        try:
            for thread in hogs:
                thread.start()
            deadline = time.monotonic() + 20
            while refusal is None and time.monotonic() < deadline:
                status, answer = post(connections[busy][0], "{ __typename }")
                if status == 503:
                    refusal = answer
                # The other worker's loop is its own: it is never behind for this load.
                status, answer = post(connections[idle][0], "{ __typename }")
                assert status == 200, answer
                time.sleep(0.02)
        finally:
            stop.set()
            for thread in hogs:
                thread.join(timeout=30)
            close_all(connections)
        assert refusal is not None, "the busy worker never shed"
        (error,) = refusal["errors"]
        assert error["extensions"]["code"] == "OVERLOADED"
        assert "UCD_GATEWAY_MAX_LOOP_LAG_MS" in error["message"]
