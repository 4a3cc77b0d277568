"""The gateway app over HTTP: probes, webhook, what is logged, GraphiQL, lifespan.

Limits and masking are in test_limits.py, the embedded local UCD in test_embedded.py;
they share conftest's app harness (``app_gateway``, ``graphql``, ``app_settings``,
``runtime``) with this module.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.api.schema import build_schema
from gateway.app import create_app
from gateway.exports import ExportStatus
from tests.gateway.conftest import (
    TOKEN,
    USER_QUERY,
    CallLog,
    app_gateway,
    app_settings,
    free_port_url,
    graphql,
    runtime,
    serve_gateway,
)

PROFILE = {"attributes": {"iid": "iid-1", "name": "Ada", "email": "ada@example.com"}}


def ucd_answer(request: httpx.Request) -> httpx.Response:
    """A UCD that answers one profile to everything (for the headers the gateway sends)."""
    if request.url.path == "/api/user/v3/metadata/columns":
        return httpx.Response(200, json=[{"key": "iid", "display_name": "Profile ID"}])
    return httpx.Response(200, json=PROFILE)


# --- probes ----------------------------------------------------------------------------


async def test_healthz_answers_without_asking_the_ucd(
    ucd_http: httpx.AsyncClient, ucd_calls: CallLog
) -> None:
    async with serve_gateway(app_settings(), ucd_http) as gw:
        response = await gw.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert ucd_calls.calls == []


async def test_readyz_is_200_when_the_ucd_answers() -> None:
    async with app_gateway() as (client, _):
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


#: E10 answers of shapes the gateway does not know: §3.9 is undocumented publicly.
ODD_METADATA = [
    {"key": "iid", "display_name": "Profile ID", "type": "string"},
    {"display_name": "an entry without a key"},
    {"key": 5, "type": ["x"]},
    {"key": "purchase", "params": "not a list"},
    {"key": "cart", "params": [{"no": "key"}, "not an object"]},
    {},
]


@pytest.mark.parametrize(
    "columns",
    [pytest.param(ODD_METADATA, id="odd-entries"), pytest.param([], id="no-entries")],
)
async def test_readyz_is_200_when_the_ucd_answers_any_list_of_objects(
    columns: list[Any],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=columns)

    async with app_gateway(handler) as (client, _):
        response = await client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"key": "iid"}, id="an-object"),
        pytest.param([{"key": "iid"}, "iid"], id="a-string-among-objects"),
    ],
)
async def test_readyz_is_503_upstream_error_when_the_answer_is_not_a_list_of_objects(
    answer: object,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answer)

    async with app_gateway(handler) as (client, _):
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "code": "UPSTREAM_ERROR"}


async def readyz(http: httpx.AsyncClient, **overrides: Any) -> httpx.Response:
    """``GET /readyz`` of a gateway whose UCD is behind ``http``."""
    async with serve_gateway(app_settings(**overrides), http) as gw:
        return await gw.client.get("/readyz")


@pytest.mark.parametrize(
    ("ucd_faults", "token", "code"),
    [
        pytest.param(None, "not-the-token", "UPSTREAM_AUTH", id="auth"),
        pytest.param(
            {"seed": 1, "endpoints": {"metadata_columns": {"error_500_rate": 1}}},
            TOKEN,
            "UPSTREAM_ERROR",
            id="error",
        ),
    ],
    indirect=["ucd_faults"],
)
async def test_readyz_is_503_with_the_error_code_when_the_ucd_fails(
    ucd_http: httpx.AsyncClient, token: str, code: str
) -> None:
    response = await readyz(ucd_http, token=token)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "code": code}


async def test_readyz_is_503_upstream_unavailable_when_nothing_listens() -> None:
    async with httpx.AsyncClient(base_url=free_port_url()) as http:
        response = await readyz(http)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "code": "UPSTREAM_UNAVAILABLE"}


# --- export webhook --------------------------------------------------------------------


async def test_webhook_with_the_right_token_marks_the_job_ready() -> None:
    async with app_gateway() as (client, app):
        exports = runtime(app).exports
        job = await exports.create(format="csv", segment_id="1")
        hook = exports.hook_url(job)
        assert hook.startswith("http://127.0.0.1:8000/hooks/exports/")
        link = "http://ucd/exports/local/p/0123.csv"
        response = await client.post(httpx.URL(hook).path, json={"url": link})
        assert response.status_code == 200
        got = await exports.get(job.id)
    assert got is not None
    assert got.status is ExportStatus.READY
    assert got.url == link


@pytest.mark.parametrize("which", ["wrong-token", "unknown-job"])
async def test_webhook_with_a_wrong_token_or_job_is_404(which: str) -> None:
    async with app_gateway() as (client, app):
        job = await runtime(app).exports.create(format="csv", segment_id="1")
        job_id, token = (job.id, "x" * 43) if which == "wrong-token" else ("nope", job.token)
        response = await client.post(f"/hooks/exports/{job_id}/{token}", json={"url": "http://x/y"})
        assert response.status_code == 404
        assert (await runtime(app).exports.get(job.id)) == job


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"{}", id="no-url"),
        pytest.param(b'{"url": 5}', id="url-not-string"),
        pytest.param(b'{"url": "file:///etc/passwd"}', id="not-http"),
        pytest.param(b'["http://x"]', id="array"),
    ],
)
async def test_webhook_with_a_bad_body_is_400(body: bytes) -> None:
    async with app_gateway() as (client, app):
        job = await runtime(app).exports.create(format="csv", segment_id="1")
        response = await client.post(f"/hooks/exports/{job.id}/{job.token}", content=body)
        assert response.status_code == 400
        assert (await runtime(app).exports.get(job.id)) == job


# --- logs --------------------------------------------------------------------------------


async def test_the_ucds_message_reaches_the_caller_but_not_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "not a valid email address: ada@@example.com: bad request"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": text})

    caplog.set_level(logging.DEBUG)
    async with app_gateway(handler) as (client, _):
        body = await graphql(client, '{ user(key: {uuid: "ada@@example.com"}) { name } }')
    (error,) = body["errors"]
    assert error["message"] == text
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "ada@@example.com" not in caplog.text


def test_access_log_lines_hide_the_webhook_token() -> None:
    create_app(app_settings())
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/hooks/exports/job-1/s3cr3t-token", "1.1", 200),
        None,
    )
    assert logging.getLogger("uvicorn.access").filter(record)
    message = record.getMessage()
    assert "s3cr3t-token" not in message
    assert "/hooks/exports/job-1/<token>" in message


def test_access_log_lines_hide_query_strings() -> None:
    """A GET /graphql carries the query and its variables (emails, phones) in the URL."""
    create_app(app_settings())
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:5000",
            "GET",
            "/graphql?query=%7B+user%28key%3A%7Bemail%3A%22ada%40example.com%22%7D%29%7D"
            "&variables=%7B%22p%22%3A%22%2B905551112233%22%7D",
            "1.1",
            200,
        ),
        None,
    )
    assert logging.getLogger("uvicorn.access").filter(record)
    message = record.getMessage()
    assert "ada" not in message
    assert "905551112233" not in message
    assert '"GET /graphql?<redacted> HTTP/1.1" 200' in message


async def test_errors_echoing_the_callers_input_are_not_logged_by_the_schema(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema itself keeps PII out of logs, with or without the app's log filters."""
    monkeypatch.setattr(logging.getLogger("strawberry.execution"), "filters", [])
    caplog.set_level(logging.DEBUG)
    result = await build_schema().execute(
        '{ user(key: {email: "ada@@example", phoneNumber: "+9055"}) { name } }'
    )
    assert result.errors is not None
    assert result.errors[0].message == "not a valid email address: ada@@example"
    assert "ada@@example" not in caplog.text
    assert "+9055" not in caplog.text


# --- GraphiQL and lifespan ----------------------------------------------------------------


async def test_browsers_get_graphiql() -> None:
    async with app_gateway() as (client, _):
        response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_a_given_http_client_is_used_and_left_open() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ucd_answer(request)

    upstream = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://ucd")
    app = create_app(app_settings(partner="acme"), http_client=upstream)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            await graphql(client, USER_QUERY)
    assert not upstream.is_closed
    assert [r.url.path for r in seen] == ["/api/user/v1/profile"]
    assert seen[0].headers["X-PARTNER-NAME"] == "acme"
    await upstream.aclose()
