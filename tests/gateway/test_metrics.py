"""/metrics: values that move with traffic, counted against the UCD calls the wire saw."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.error_codes import ErrorCode
from gateway.metrics import ANONYMOUS, MAX_OPERATION_NAMES, OTHER, GatewayMetrics, OperationNames
from gateway.operations import OK, _observed, observe_operations
from gateway.settings import Settings
from tests.gateway.conftest import (
    UPSERT,
    CallLog,
    GatewayHttp,
    UcdWire,
    app_gateway,
    graphql,
    serve_gateway,
)

PROFILE = "/api/user/v1/profile"
UPSERT_PATH = "/api/user/v1/upsert"

#: Personal data sent in variables; none of it may reach a metric line.
PII = ("zelda.quintrell@example.com", "+905321234567", "Zelda", "Quintrell")

GET_USER = """
query GetUser($key: UserKey!) { user(key: $key) { insiderId name } }
"""


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly these ``labels``; 0 when absent."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return 0.0


def upsert_pii() -> dict[str, Any]:
    email, phone, name, surname = PII
    return {
        "input": {
            "users": [
                {
                    "key": {"email": email, "phoneNumber": phone},
                    "attributes": {"name": name, "surname": surname},
                },
                {"key": {"uuid": "m-2"}, "attributes": {"age": 2}},
                {"key": {"uuid": "m-3"}, "attributes": {"age": 3}},
            ]
        }
    }


async def test_operations_and_ucd_calls_are_counted_as_the_wire_saw_them(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    client = gateway_http.client
    before = await scrape(client)
    assert (
        sample(
            before, "ucd_gateway_operations_total", operation="GetUser", type="query", outcome="OK"
        )
        == 0
    )

    await gateway_http.ok(UPSERT, upsert_pii())
    for _ in range(2):
        await gateway_http.ok(GET_USER, {"key": {"email": PII[0]}})
    await gateway_http.ok(GET_USER, {"key": {"uuid": "nobody"}})

    after = await scrape(client)
    ok = {"operation": "GetUser", "type": "query", "outcome": "OK"}
    assert sample(after, "ucd_gateway_operations_total", **ok) == 3
    assert (
        sample(
            after, "ucd_gateway_operations_total", operation="Upsert", type="mutation", outcome="OK"
        )
        == 1
    )
    assert (
        sample(
            after, "ucd_gateway_operation_duration_seconds_count", operation="GetUser", type="query"
        )
        == 3
    )
    # Two reads found the user, one did not (the UCD's 404 is an answer, counted as such).
    assert len(ucd_calls.profiles) == 3
    found = sample(after, "ucd_gateway_ucd_calls_total", endpoint=PROFILE, status="200")
    missing = sample(after, "ucd_gateway_ucd_calls_total", endpoint=PROFILE, status="404")
    assert (found, missing) == (2, 1)
    assert sample(after, "ucd_gateway_ucd_call_duration_seconds_count", endpoint=PROFILE) == 3
    # One E1 call carried the three users of the mutation.
    assert len(ucd_calls.upserts) == 1
    assert sample(after, "ucd_gateway_ucd_call_users_count", endpoint=UPSERT_PATH) == 1
    assert sample(after, "ucd_gateway_ucd_call_users_sum", endpoint=UPSERT_PATH) == 3
    assert sample(after, "ucd_gateway_ucd_call_users_bucket", endpoint=UPSERT_PATH, le="2.0") == 0
    assert sample(after, "ucd_gateway_ucd_call_users_bucket", endpoint=UPSERT_PATH, le="5.0") == 1
    # Closed circuits for both endpoints the gateway called.
    for endpoint in (PROFILE, UPSERT_PATH):
        assert (
            sample(after, "ucd_gateway_ucd_breaker_state", endpoint=endpoint, state="closed") == 1
        )
        assert sample(after, "ucd_gateway_ucd_breaker_state", endpoint=endpoint, state="open") == 0
    # 4 operations, 4 UCD calls so far.
    assert sample(after, "ucd_gateway_operations_per_ucd_call") == 1
    for value in PII:
        assert value not in after


async def test_reads_that_share_one_ucd_call_raise_the_coalescing_ratio(
    gateway_http: GatewayHttp, ucd_transport: UcdWire, ucd_calls: CallLog
) -> None:
    """Four concurrent reads of one user join one profile call: 4 operations per call."""
    ucd_transport.delay = 0.2  # every read starts while the first call is on the wire
    await asyncio.gather(*(gateway_http.ok(GET_USER, {"key": {"uuid": "u-1"}}) for _ in range(4)))
    assert len(ucd_calls.profiles) == 1
    text = await scrape(gateway_http.client)
    assert sample(text, "ucd_gateway_operations_per_ucd_call") == 4
    assert sample(text, "ucd_gateway_ucd_calls_total", endpoint=PROFILE, status="404") == 1


async def test_in_flight_shows_the_graphql_requests_being_served(
    gateway_http: GatewayHttp, ucd_transport: UcdWire
) -> None:
    ucd_transport.delay = 0.3
    read = asyncio.ensure_future(gateway_http.ok(GET_USER, {"key": {"uuid": "u-1"}}))
    while ucd_transport.in_flight == 0:  # noqa: ASYNC110  # the wire offers no event
        await asyncio.sleep(0.005)
    during = await scrape(gateway_http.client)
    await read
    after = await scrape(gateway_http.client)
    assert sample(during, "ucd_gateway_in_flight_requests") == 1
    assert sample(after, "ucd_gateway_in_flight_requests") == 0


async def test_refused_operations_are_counted_by_their_code() -> None:
    async with app_gateway() as (client, _):
        await graphql(client, "{ __typename }")
        await graphql(client, "query Broken { user(key: ")
        await graphql(client, 'query Bad { user(key: {email: "not-an-email"}) { name } }')
        await graphql(client, "query Unknown { nope }")
        text = await scrape(client)
    assert (
        sample(
            text,
            "ucd_gateway_operations_total",
            operation=OTHER,
            type="unknown",
            outcome="GRAPHQL_PARSE_FAILED",
        )
        == 1
    )
    assert (
        sample(
            text,
            "ucd_gateway_operations_total",
            operation="Bad",
            type="query",
            outcome="BAD_USER_INPUT",
        )
        == 1
    )
    assert (
        sample(
            text,
            "ucd_gateway_operations_total",
            operation="Unknown",
            type="query",
            outcome="GRAPHQL_VALIDATION_FAILED",
        )
        == 1
    )
    assert (
        sample(
            text, "ucd_gateway_operations_total", operation=ANONYMOUS, type="query", outcome="OK"
        )
        == 1
    )
    assert "not-an-email" not in text


async def test_operation_names_past_the_limit_fold_into_one_label() -> None:
    async with app_gateway() as (client, _):
        for i in range(MAX_OPERATION_NAMES + 3):
            await graphql(client, f"query Op{i} {{ __typename }}")
        text = await scrape(client)
    names = {
        s.labels["operation"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "ucd_gateway_operations_total"
    }
    assert len(names) == MAX_OPERATION_NAMES + 1
    assert OTHER in names
    assert (
        sample(text, "ucd_gateway_operations_total", operation=OTHER, type="query", outcome="OK")
        == 3
    )


def test_an_operation_label_is_its_name_only_when_the_document_defines_it() -> None:
    names = OperationNames(limit=1)
    assert names.label(None, in_document=True) == ANONYMOUS
    assert names.label("GetUser", in_document=False) == OTHER
    assert names.label("x" * 65, in_document=True) == OTHER
    assert names.label("GetUser", in_document=True) == "GetUser"
    assert names.label("GetUser", in_document=True) == "GetUser"
    assert names.label("Second", in_document=True) == OTHER


async def test_an_operation_name_the_document_lacks_is_counted_as_other() -> None:
    async with app_gateway() as (client, _):
        response = await client.post(
            "/graphql", json={"query": "query A { __typename }", "operationName": "jane@x.com"}
        )
        assert response.status_code in (200, 400)
        text = await scrape(client)
    assert "jane@x.com" not in text
    assert (
        sample(
            text,
            "ucd_gateway_operations_total",
            operation=OTHER,
            type="unknown",
            outcome="BAD_REQUEST",
        )
        == 1
    )


def failing(status: int) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": "down"})

    return handler


async def test_an_endpoint_whose_circuit_opened_shows_open() -> None:
    async with app_gateway(failing(503), breaker_failures=1) as (client, _):
        await graphql(client, GET_USER, key={"uuid": "u-1"})
        text = await scrape(client)
    assert sample(text, "ucd_gateway_ucd_calls_total", endpoint=PROFILE, status="503") == 1
    assert sample(text, "ucd_gateway_ucd_breaker_state", endpoint=PROFILE, state="open") == 1
    assert sample(text, "ucd_gateway_ucd_breaker_state", endpoint=PROFILE, state="closed") == 0


@pytest.mark.parametrize(
    ("error", "status"),
    [
        pytest.param(httpx.ConnectError("refused"), "network_error", id="refused"),
        pytest.param(httpx.ReadTimeout("slow"), "timeout", id="timeout"),
    ],
)
async def test_a_call_without_an_answer_is_counted_by_what_happened(
    error: Exception, status: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async with app_gateway(handler) as (client, _):
        await graphql(client, GET_USER, key={"uuid": "u-1"})
        text = await scrape(client)
    assert sample(text, "ucd_gateway_ucd_calls_total", endpoint=PROFILE, status=status) == 1


async def test_a_call_whose_answer_is_late_is_a_timeout(
    ucd_http: httpx.AsyncClient, ucd_transport: UcdWire, settings: Settings
) -> None:
    ucd_transport.delay = 0.5
    fast = settings.model_copy(update={"request_timeout": 0.05, "max_retries": 0})
    async with serve_gateway(fast, ucd_http) as served:
        await served.post(GET_USER, {"key": {"uuid": "u-1"}})
        text = await scrape(served.client)
    assert sample(text, "ucd_gateway_ucd_calls_total", endpoint=PROFILE, status="timeout") == 1
    assert (
        sample(
            text,
            "ucd_gateway_operations_total",
            operation="GetUser",
            type="query",
            outcome="UPSTREAM_UNAVAILABLE",
        )
        == 1
    )


def test_two_apps_count_apart() -> None:
    class Idle:
        in_flight = 0
        in_flight_limit = 256

    first, second = GatewayMetrics(Idle()), GatewayMetrics(Idle())
    first.on_call(PROFILE, "200", 0.01, 1)
    assert (
        sample(
            first.render()[0].decode(),
            "ucd_gateway_ucd_calls_total",
            endpoint=PROFILE,
            status="200",
        )
        == 1
    )
    assert (
        sample(
            second.render()[0].decode(),
            "ucd_gateway_ucd_calls_total",
            endpoint=PROFILE,
            status="200",
        )
        == 0
    )


async def test_a_scraper_asking_for_openmetrics_gets_it() -> None:
    async with app_gateway() as (client, _):
        await graphql(client, "query Hello { __typename }")
        response = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert 'ucd_gateway_operations_total{operation="Hello",outcome="OK",type="query"} 1.0' in (
        response.text
    )


BAD = ErrorCode.BAD_REQUEST.value


def operation_observed() -> bool:
    return _observed.get()


def test_an_operation_that_raises_under_observing_is_counted_as_refused() -> None:
    """The compiled path's observation (a plain context manager) records an operation
    that raised past it, as the extension does, and leaves it unobserved afterwards."""

    class Idle:
        in_flight = 0
        in_flight_limit = 256

    metrics = GatewayMetrics(Idle())
    observer = observe_operations(metrics)

    def broken() -> None:
        with observer.observing("Broken", "query"):
            assert operation_observed()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        broken()
    assert not operation_observed()
    with observer.observing(None, "query") as observed:
        observed.answered(None)
    text = metrics.render()[0].decode()
    assert (
        sample(text, "ucd_gateway_operations_total", operation="Broken", type="query", outcome=BAD)
        == 1
    )
    assert (
        sample(text, "ucd_gateway_operations_total", operation=ANONYMOUS, type="query", outcome=OK)
        == 1
    )
