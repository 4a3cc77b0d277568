"""Requests /graphql does not take: one clear BAD_REQUEST answer each, never a 500
(gateway/request_bodies.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from tests.gateway.conftest import app_gateway

JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Bad:
    """A request and what its refusal must say: the status and a part of the message."""

    status: int
    mentions: str
    method: str = "POST"
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    params: dict[str, str] | None = None
    form: dict[str, str] | None = None


def body(value: Any) -> bytes:
    return orjson.dumps(value)


def nested(opening: str, closing: str, depth: int, inner: str = "") -> bytes:
    return (opening * depth + inner + closing * depth).encode()


NOT_AN_OBJECT = "must be a JSON object"
NOT_JSON = "Unable to parse request body as JSON"
TYPENAME = "{ __typename }"

BAD_REQUESTS = [
    # JSON values that are not an object or a batch of them: these were 500s.
    pytest.param(Bad(400, NOT_AN_OBJECT, content=b'"..."'), id="string"),
    pytest.param(Bad(400, NOT_AN_OBJECT, content=b"1"), id="number"),
    pytest.param(Bad(400, NOT_AN_OBJECT, content=b"null"), id="null"),
    pytest.param(Bad(400, NOT_AN_OBJECT, content=b"true"), id="true"),
    pytest.param(Bad(400, NOT_AN_OBJECT, content=b"false"), id="false"),
    pytest.param(Bad(400, "The batch is empty", content=b"[]"), id="empty-list"),
    pytest.param(
        Bad(
            400,
            "batch[1]: " + "The request body " + NOT_AN_OBJECT,
            content=body([{"query": TYPENAME}, 1]),
        ),
        id="batch-of-a-number",
    ),
    pytest.param(
        Bad(
            400, "The batch has 11 operations; at most 10", content=body([{"query": TYPENAME}] * 11)
        ),
        id="batch-over-max",
    ),
    pytest.param(Bad(400, NOT_AN_OBJECT, content=nested("[", "]", 300)), id="list-depth-300"),
    # Not JSON at all.
    pytest.param(Bad(400, NOT_JSON, content=b""), id="empty-body"),
    pytest.param(Bad(400, NOT_JSON, content=b'{"query":'), id="truncated"),
    pytest.param(Bad(400, NOT_JSON, content=b"{'query': 1}"), id="single-quotes"),
    pytest.param(Bad(400, NOT_JSON, content=b'{"query": "\xff\xfe"}'), id="invalid-utf8"),
    pytest.param(Bad(400, NOT_JSON, content=nested("[", "]", 5000)), id="list-depth-5000"),
    # Fields of the wrong type, each named.
    pytest.param(Bad(400, "`query`", content=body({"query": 1})), id="query-number"),
    pytest.param(Bad(400, "`query`", content=body({"query": [TYPENAME]})), id="query-list"),
    pytest.param(
        Bad(400, "`query`", content=b'{"query": ' + nested('{"a": ', "}", 300, "1") + b"}"),
        id="query-object-depth-300",
    ),
    pytest.param(Bad(400, "No GraphQL query", content=body({"query": None})), id="query-null"),
    pytest.param(Bad(400, "No GraphQL query", content=body({})), id="no-query"),
    pytest.param(
        Bad(400, "`variables`", content=body({"query": TYPENAME, "variables": []})),
        id="variables-list",
    ),
    pytest.param(
        Bad(400, "`variables`", content=body({"query": TYPENAME, "variables": "{}"})),
        id="variables-string",
    ),
    pytest.param(
        Bad(400, "`operationName`", content=body({"query": TYPENAME, "operationName": 1})),
        id="operation-name-number",
    ),
    pytest.param(
        Bad(400, "`operationName`", content=body({"query": TYPENAME, "operationName": {}})),
        id="operation-name-object",
    ),
    pytest.param(
        Bad(400, "`extensions`", content=body({"query": TYPENAME, "extensions": [1]})),
        id="extensions-list",
    ),
    # Persisted documents: Apollo's APQ extension and GraphQL-over-HTTP's documentId.
    pytest.param(
        Bad(
            400,
            "`version` 1",
            content=body(
                {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "a" * 64}}}
            ),
        ),
        id="persisted-query-version-2",
    ),
    pytest.param(
        Bad(
            400,
            "`extensions.persistedQuery.sha256Hash`",
            content=body({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "abc"}}}),
        ),
        id="persisted-query-short-hash",
    ),
    pytest.param(
        Bad(
            400,
            "`extensions.persistedQuery.sha256Hash`",
            method="GET",
            params={"extensions": '{"persistedQuery": {"version": 1}}'},
        ),
        id="get-persisted-query-without-hash",
    ),
    pytest.param(
        Bad(400, "`documentId`", content=body({"documentId": 7})), id="document-id-number"
    ),
    pytest.param(
        Bad(
            400,
            "without `query`",
            content=body({"documentId": "sha256:" + "a" * 64, "query": TYPENAME}),
        ),
        id="document-id-with-query",
    ),
    pytest.param(
        Bad(400, "non-empty `documentId`", content=body({"documentId": ""})), id="document-id-empty"
    ),
    # Bodies that are not JSON by their content type.
    pytest.param(
        Bad(
            415,
            "text/plain",
            content=body({"query": TYPENAME}),
            headers={"Content-Type": "text/plain"},
        ),
        id="text-plain",
    ),
    pytest.param(
        Bad(415, "application/x-www-form-urlencoded", form={"query": TYPENAME}, headers={}),
        id="form",
    ),
    pytest.param(Bad(415, "none", content=body({"query": TYPENAME}), headers={}), id="no-type"),
    # Methods and GET.
    pytest.param(
        Bad(
            400,
            "mutations are not allowed",
            method="GET",
            params={"query": "mutation { __typename }"},
        ),
        id="get-mutation",
    ),
    pytest.param(
        Bad(400, "`variables`", method="GET", params={"query": TYPENAME, "variables": "[1]"}),
        id="get-variables-list",
    ),
    pytest.param(
        Bad(405, "GET and POST", method="PUT", content=body({"query": TYPENAME})), id="put"
    ),
    pytest.param(Bad(405, "GET and POST", method="DELETE", content=b""), id="delete"),
]


@pytest.mark.parametrize("bad", BAD_REQUESTS)
async def test_a_bad_request_is_one_bad_request_error_and_no_traceback(
    bad: Bad, caplog: pytest.LogCaptureFixture
) -> None:
    ucd_calls: list[httpx.Request] = []

    def ucd(request: httpx.Request) -> httpx.Response:
        ucd_calls.append(request)
        return httpx.Response(500)

    caplog.set_level(logging.DEBUG)
    async with app_gateway(ucd) as (client, _):
        response = await client.request(
            bad.method,
            "/graphql",
            content=bad.content,
            data=bad.form,
            params=bad.params,
            headers=bad.headers,
        )
    assert response.status_code == bad.status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = orjson.loads(response.content)
    (error,) = answer["errors"]
    assert set(answer) == {"errors"}
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert bad.mentions in error["message"]
    assert "Traceback" not in response.text
    assert ".py" not in response.text
    if bad.status == 405:
        assert response.headers["allow"] == "GET, POST"
    assert ucd_calls == []
    assert "Traceback" not in caplog.text
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING] == []


async def test_well_formed_requests_still_answer() -> None:
    """The checks refuse only what they name: null fields, charset and GET still work."""
    async with app_gateway() as (client, _):
        posted = await client.post(
            "/graphql",
            content=body(
                {"query": TYPENAME, "variables": None, "operationName": None, "extensions": None}
            ),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        got = await client.get("/graphql", params={"query": TYPENAME})
    assert posted.json() == got.json()
    assert posted.json()["data"] == {"__typename": "Query"}
    assert "errors" not in posted.json()
