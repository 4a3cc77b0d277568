"""Request limits and their answers over HTTP: body size, query depth, aliases, tokens,
the parser and validation caches, error codes and masking (gateway/limits.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import parse, specified_rules

from gateway.api.schema import build_schema
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.limits import RequestGuards, ValidationCache, parse_cache_info
from tests.gateway.conftest import USER_QUERY, GatewayHttp, app_gateway, graphql

# --- size and query limits ---------------------------------------------------------------


async def test_body_over_the_limit_is_413_before_parsing() -> None:
    async with app_gateway(max_body_bytes=200) as (client, _):
        query = "{ " + "__typename " * 30 + "}"
        response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}
    assert "200 bytes" in error["message"]


async def test_chunked_body_over_the_limit_is_413() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ '
        for _ in range(50):
            yield b"__typename "
        yield b'}"}'

    async with app_gateway(max_body_bytes=200) as (client, _):
        response = await client.post(
            "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413


async def test_chunked_body_under_the_limit_reaches_graphql() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ __typename }"}'

    async with app_gateway(max_body_bytes=200) as (client, _):
        response = await client.post(
            "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 200
    # __typename costs no UCD call, and says so in extensions.cost.
    assert response.json() == {
        "data": {"__typename": "Query"},
        "extensions": {"cost": {"ucdCalls": {"planned": 0, "actual": 0}}},
    }


async def test_query_deeper_than_the_limit_is_refused() -> None:
    query = '{ user(key: {uuid: "u"}) { events(names: ["x"]) { name } } }'
    async with app_gateway(max_query_depth=1) as (client, _):
        assert "errors" not in await graphql(client, USER_QUERY)  # depth 1 is allowed
        body = await graphql(client, query)
    (error,) = body["errors"]
    assert "exceeds maximum operation depth of 1" in error["message"]
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert body["data"] is None


async def test_too_many_aliases_are_refused() -> None:
    aliases = " ".join(f'u{i}: user(key: {{uuid: "u{i}"}}) {{ name }}' for i in range(4))
    async with app_gateway(max_aliases=3) as (client, _):
        body = await graphql(client, "{ " + aliases + " }")
    (error,) = body["errors"]
    assert error["message"] == "4 aliases found. Allowed: 3 (UCD_GATEWAY_MAX_ALIASES)"
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_too_many_tokens_are_refused() -> None:
    async with app_gateway(max_tokens=10) as (client, _):
        body = await graphql(client, USER_QUERY)
    (error,) = body["errors"]
    assert "Document contains more than 10 tokens" in error["message"]
    assert error["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}


async def test_queries_within_the_default_limits_run() -> None:
    async with app_gateway() as (client, _):
        written = await graphql(
            client,
            'mutation { upsertUsers(input: {users: [{key: {uuid: "u-1"}, attributes: '
            '{name: "Ada"}}]}) { successCount } }',
        )
        body = await graphql(client, USER_QUERY)
    assert written == {
        "data": {"upsertUsers": {"successCount": 1}},
        "extensions": {"cost": {"ucdCalls": {"planned": 1, "actual": 1}}},
    }
    assert body["data"]["user"]["name"] == "Ada"
    assert body["data"]["user"]["insiderId"]


def _guards(app: Any) -> RequestGuards:
    schema = app.routes[0].endpoint.schema
    (guards,) = [ext for ext in schema.extensions if isinstance(ext, RequestGuards)]
    return guards


async def test_repeated_queries_hit_the_parser_cache() -> None:
    # graphql-core's path; the compiled one keeps its own plan per document (below).
    async with app_gateway(compiled_execution=False) as (client, _):
        await graphql(client, USER_QUERY)
        before = parse_cache_info()
        for _ in range(3):
            await graphql(client, USER_QUERY)
        after = parse_cache_info()
    assert after.hits - before.hits == 3
    assert after.misses == before.misses


async def test_repeated_queries_hit_the_validation_cache() -> None:
    """The limit rules are built once per app; per-request rule classes would miss every time."""
    async with app_gateway(compiled_execution=False) as (client, app):
        cache = _guards(app).validation_cache
        await graphql(client, USER_QUERY)
        hits, misses = cache.hits, cache.misses
        for _ in range(3):
            await graphql(client, USER_QUERY)
    assert cache.hits - hits == 3
    assert cache.misses == misses


async def test_a_compiled_document_is_parsed_and_validated_once() -> None:
    """The compiled path prepares a document through the same caches once, then answers
    it from its plan: neither cache is asked again."""
    async with app_gateway() as (client, app):
        cache = _guards(app).validation_cache
        await graphql(client, USER_QUERY)
        parsed, validated = parse_cache_info(), (cache.hits, cache.misses)
        for _ in range(3):
            await graphql(client, USER_QUERY)
        assert (parse_cache_info().hits, parse_cache_info().misses) == (parsed.hits, parsed.misses)
        assert (cache.hits, cache.misses) == validated


@pytest.mark.parametrize("compiled", [True, False])
async def test_new_documents_of_one_shape_are_validated_once_and_answered_alike(
    compiled: bool,
) -> None:
    """A client writing its values into the text: each request a new document, validated
    by its shape (gateway/document_shape.py) after the first, on both execution paths;
    one of the same shape with a bad DateTime is still refused by the rules."""
    async with app_gateway(compiled_execution=compiled) as (client, app):
        await graphql(
            client,
            'mutation { upsertUsers(input: {users: [{key: {uuid: "u-1"}, attributes: '
            '{name: "Ada"}}, {key: {uuid: "u-2"}, attributes: {name: "Bob"}}]}) '
            "{ successCount } }",
        )
        cache = _guards(app).validation_cache
        before = cache.shape_hits
        answers = [
            await graphql(client, f'{{ r{i}: user(key: {{uuid: "u-{i}"}}) {{ name }} }}')
            for i in (1, 2)
        ]
        assert cache.shape_hits - before == 1
        good = (
            '{ user(key: {uuid: "u-1"}) '
            '{ events(names: ["x"], from: "2026-01-01T00:00:00Z") { name } } }'
        )
        assert "errors" not in await graphql(client, good)
        refused = await graphql(client, good.replace("2026-01-01T00:00:00Z", "yesterday"))
    assert [answer["data"] for answer in answers] == [
        {"r1": {"name": "Ada"}},
        {"r2": {"name": "Bob"}},
    ]
    (error,) = refused["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "DateTime" in error["message"]


def test_validation_cache_revalidates_a_new_document_and_stays_bounded() -> None:
    """The query text is the key; only the very document validated before is a hit."""
    schema = graphql_core_schema(build_schema())
    rules = tuple(specified_rules)
    cache = ValidationCache(maxsize=2)
    texts = ["{ __typename }", "{ nope }", "{ __schema { queryType { name } } }"]
    docs = [parse(text) for text in texts]
    assert cache.validate(schema, docs[0], texts[0], rules) == []
    assert cache.validate(schema, docs[0], texts[0], rules) == []
    assert cache.validate(schema, parse(texts[0]), texts[0], rules) == []  # parsed anew
    assert cache.validate(schema, docs[0], texts[0], rules) == []  # replaced just now
    assert (cache.hits, cache.misses) == (1, 3)
    (error,) = cache.validate(schema, docs[1], texts[1], rules)
    assert "Cannot query field 'nope'" in error.message
    cache.validate(schema, docs[2], texts[2], rules)  # a third text evicts the oldest
    assert (cache.hits, cache.misses) == (1, 5)
    cache.validate(schema, docs[1], texts[1], rules)  # kept: a hit
    assert (cache.hits, cache.misses) == (2, 5)
    cache.validate(schema, docs[0], texts[0], rules)  # evicted: validated again
    assert (cache.hits, cache.misses) == (2, 6)


# --- masking and error codes -------------------------------------------------------------


async def test_unexpected_exception_is_masked_with_an_error_id_that_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    email = "ada" + "@example.com"  # built, so the traceback's source lines lack it

    def handler(request: httpx.Request) -> httpx.Response:
        raise RuntimeError(f"boom for {email}")

    caplog.set_level(logging.DEBUG)
    async with app_gateway(handler) as (client, _):
        body = await graphql(client, USER_QUERY)
    (error,) = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    error_id = error["extensions"]["errorId"]
    assert uuid.UUID(error_id)
    assert error_id in caplog.text
    assert "RuntimeError" in caplog.text
    assert "ada@example.com" not in caplog.text
    assert "boom" not in str(body)


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        pytest.param(
            '{ user(key: {uuid: "u"}) { events(names: ["x"], from: "yesterday") { name } } }',
            {},
            "GRAPHQL_VALIDATION_FAILED",
            id="bad-literal",
        ),
        pytest.param(
            'query($f: DateTime) { user(key: {uuid: "u"}) { events(names: ["x"], from: $f) '
            "{ name } } }",
            {"f": "yesterday"},
            "BAD_USER_INPUT",
            id="bad-variable",
        ),
    ],
)
async def test_a_scalar_refusing_the_callers_value_is_not_masked(
    query: str, variables: dict[str, Any], code: str
) -> None:
    """The DateTime scalar's ValueError is about the caller's input, not a server fault."""
    async with app_gateway() as (client, _):
        body = await graphql(client, query, **variables)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": code}
    assert "yesterday" in error["message"]


@pytest.mark.parametrize(
    "ucd_faults",
    [{"seed": 1, "endpoints": {"profile": {"error_429_rate": 1, "retry_after_s": 7}}}],
    indirect=True,
)
async def test_gateway_errors_pass_through_with_their_code(gateway_http: GatewayHttp) -> None:
    body = await gateway_http.post(USER_QUERY)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 7}
    assert "rate limiting" in error["message"]
