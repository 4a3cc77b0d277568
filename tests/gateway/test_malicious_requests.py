"""Hostile requests, one table, over HTTP against the gateway on the local UCD.

A user with a known email, phone and name is seeded first; then every row of ``HOSTILE``
is sent to one gateway with introspection off (``UCD_GATEWAY_INTROSPECTION=false``, the
production setting: with it on, ``__schema`` is answered and "Did you mean" is allowed on
purpose, so the off run is the one with something to leak). Each row must get:

* HTTP 2xx with ``errors``, or a 4xx; never a 5xx;
* exactly one error: every row is refused for one reason, and the gateway stops at the
  first limit it breaks. Two rows get two, rightly: graphql-core's introspection rule
  names each field of an introspection type (``__schema`` and its ``types``), and each
  is a separate place the caller has to change;
* no "Traceback", no file path (``.py``, ``/work/``, ``site-packages``), no "Did you
  mean" and none of the seeded user's personal data anywhere in the answer;
* no UCD call: every row is refused before the gateway asks the UCD anything.

Then ten valid operations (reads and writes) still answer, and the log holds no
traceback and none of the seeded personal data.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from bench.document_limits import fragment_bomb
from gateway.settings import Settings
from tests.gateway.conftest import (
    GATEWAY_BASE,
    UPSERT,
    CallLog,
    GatewayHttp,
    HookRelay,
    serve_gateway,
)

SEED_EMAIL = "zebulon.quarrington@example.org"
SEED_PHONE = "+905551119988"
SEED_NAME = "Zebulon"
SEED_SURNAME = "Quarrington"
SEED_UUID = "seeded-hostile-target"
#: What must never come back in a hostile answer, nor reach the log.
PII = (SEED_EMAIL, SEED_PHONE, SEED_NAME, SEED_SURNAME)
LEAKS = ("Traceback", ".py", "/work/", "site-packages", "Did you mean")

JSON = {"content-type": "application/json"}
BODY_LIMIT = 5_000_000


@dataclass(frozen=True)
class Hostile:
    """One hostile request: a JSON body (or raw bytes), its method and headers, and the
    code of the one error it must get (the HTTP status is checked to be 200 or 4xx)."""

    code: str
    json: Any = None
    content: bytes | None = None
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=lambda: dict(JSON))
    params: Mapping[str, str] | None = None
    status: int = 200
    #: Errors expected: one everywhere in this table (see the module doc).
    errors: int = 1


def q(query: str, variables: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = dict(variables)
    body.update(extra)
    return body


def nested(levels: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"uuid": value}
    return value


def nested_list(levels: int) -> str:
    return "[" * levels + '{uuid: "x"}' + "]" * levels


USER_BY_KEY = "query($k: UserKey!) { user(key: $k) { name } }"
USERS_BY_KEYS = "query($k: [UserKey!]!) { users(keys: $k) { name } }"
DELETE_PII = "mutation($k: UserKey!) { deletePii(key: $k) { ok } }"
VALIDATION = "GRAPHQL_VALIDATION_FAILED"
PARSE = "GRAPHQL_PARSE_FAILED"
INPUT = "BAD_USER_INPUT"
BAD = "BAD_REQUEST"

HOSTILE: list[Any] = [
    # --- documents that expand, repeat or nest -------------------------------------------
    pytest.param(Hostile(VALIDATION, q(fragment_bomb(24))), id="fragment-bomb-24"),
    pytest.param(Hostile(VALIDATION, q(fragment_bomb(60))), id="fragment-bomb-60"),
    pytest.param(
        Hostile(
            VALIDATION,
            q(
                "fragment A on User { ...B } fragment B on User { ...A } "
                '{ user(key: {uuid: "x"}) { ...A } }'
            ),
        ),
        id="fragment-cycle",
    ),
    pytest.param(
        Hostile(
            VALIDATION,
            q(
                "{ "
                + " ".join(f'a{i}: users(keys: [{{uuid: "k{i}"}}]) {{ name }}' for i in range(60))
                + " }"
            ),
        ),
        id="aliases-times-keys",
    ),
    pytest.param(
        Hostile(VALIDATION, q("{ " + " ".join(f"a{i}: __typename" for i in range(51)) + " }")),
        id="aliases-51",
    ),
    pytest.param(Hostile(VALIDATION, q("{ " + "__typename " * 800 + "}")), id="typename-spam-800"),
    pytest.param(Hostile(PARSE, q("{ " + "__typename " * 100_000 + "}")), id="typename-spam-100k"),
    pytest.param(
        Hostile(
            VALIDATION,
            q("{ __schema { types { " + "ofType { " * 30 + "name" + " }" * 30 + " } } }"),
        ),
        id="introspection-depth-30",
    ),
    pytest.param(
        Hostile(VALIDATION, q("{ __schema { types { name } } }"), errors=2), id="introspection-off"
    ),
    pytest.param(
        Hostile(VALIDATION, q('{ __type(name: "User") { fields { name } } }'), errors=2),
        id="type-off",
    ),
    pytest.param(
        Hostile(VALIDATION, q("{ " + "__typename @include(if: true) " * 60 + "}")),
        id="directives-60",
    ),
    pytest.param(
        Hostile(VALIDATION, q("{ __typename @skip(if: false) @skip(if: false) }")),
        id="directive-repeated",
    ),
    pytest.param(Hostile(VALIDATION, q("{ __typename @admin }")), id="directive-unknown"),
    pytest.param(
        Hostile(VALIDATION, q("{ user(key: " + nested_list(40) + ") { name } }")),
        id="nested-list-literal-40",
    ),
    pytest.param(
        Hostile(PARSE, q("{ user(key: {uuid: " + "{a: " * 200 + "1" + "}" * 200 + "}) { name } }")),
        id="nested-object-literal-200",
    ),
    # --- text the lexer would read for its length ---------------------------------------
    pytest.param(
        Hostile(PARSE, q("{ " + " " * (BODY_LIMIT - 1000) + " __typename }")), id="spaces-5mb"
    ),
    pytest.param(
        Hostile(PARSE, q('{ user(key: {uuid: "' + "x" * (BODY_LIMIT - 1000) + '"}) { name } }')),
        id="string-literal-5mb",
    ),
    pytest.param(
        Hostile(PARSE, q("#\n" * ((BODY_LIMIT - 1000) // 3) + "{ __typename }")),
        id="comment-lines-5mb",
    ),
    pytest.param(Hostile(PARSE, q("{ " + "a " * 10_001 + "}")), id="tokens-10001"),
    # --- syntax, names and operations ---------------------------------------------------
    pytest.param(Hostile(PARSE, q("{ us\x00er { name } }")), id="nul-in-field-name"),
    pytest.param(Hostile(PARSE, q("{ user\x07 { name } }")), id="bell-after-field-name"),
    pytest.param(
        Hostile(PARSE, q('{ user(key: {uuid: "a\nb"}) { name } }')), id="newline-in-string"
    ),
    pytest.param(Hostile(PARSE, q("{ user(key: {uuid: ")), id="unterminated"),
    pytest.param(Hostile(VALIDATION, q("{ usr { name } }")), id="unknown-field"),
    pytest.param(
        Hostile(VALIDATION, q('{ user(key: {uid: "x"}) { name } }')), id="unknown-input-field"
    ),
    pytest.param(
        Hostile(VALIDATION, q('{ user(key: {uuid: "x"}) { emial } }')), id="unknown-user-field"
    ),
    pytest.param(
        Hostile(VALIDATION, q('{ user(key: {uuid: "x"}, admin: true) { name } }')),
        id="unknown-argument",
    ),
    pytest.param(Hostile(VALIDATION, q("{ user { name } }")), id="missing-argument"),
    pytest.param(Hostile(VALIDATION, q("subscription { __typename }")), id="subscription"),
    pytest.param(
        Hostile(VALIDATION, q("query A { __typename } query A { __typename }", operationName="A")),
        id="repeated-operation-name",
    ),
    pytest.param(
        Hostile(BAD, q("query A { __typename }", operationName="Nope"), status=400),
        id="unknown-operation-name",
    ),
    # --- variables ------------------------------------------------------------------------
    pytest.param(Hostile(INPUT, q(USER_BY_KEY, {"k": 5})), id="variable-wrong-type"),
    pytest.param(Hostile(INPUT, q(USER_BY_KEY, {"k": {"uid": "x"}})), id="variable-unknown-field"),
    pytest.param(Hostile(INPUT, q(USER_BY_KEY, {"k": nested(200, "x")})), id="variable-nested-200"),
    pytest.param(
        Hostile(INPUT, q(USER_BY_KEY, {"k": {"uuid": "x" * 4_000_000}})), id="variable-uuid-4mb"
    ),
    pytest.param(
        Hostile(INPUT, q(USERS_BY_KEYS, {"k": [{"uuid": f"k{i}"} for i in range(101)]})),
        id="users-101-keys",
    ),
    pytest.param(Hostile(INPUT, q(USER_BY_KEY, {"k": {"uuid": "u-1\n"}})), id="uuid-newline"),
    pytest.param(
        Hostile(INPUT, q(USER_BY_KEY, {"k": {"uuid": "u-1\r\nlevel=ERROR forged"}})),
        id="uuid-crlf-log-forgery",
    ),
    pytest.param(Hostile(INPUT, q(USER_BY_KEY, {"k": {"uuid": "u\x00-1"}})), id="uuid-nul"),
    pytest.param(
        Hostile(INPUT, q(USER_BY_KEY, {"k": {"phoneNumber": "+905551112233\n"}})),
        id="phone-newline",
    ),
    pytest.param(Hostile(INPUT, q(USER_BY_KEY, {"k": {"email": "a\nb@x.io"}})), id="email-newline"),
    pytest.param(
        Hostile(INPUT, q(USER_BY_KEY, {"k": {"insiderId": "i" * 2000}})), id="insider-id-2000"
    ),
    pytest.param(
        Hostile(INPUT, q(USER_BY_KEY, {"k": {"custom": [{"name": "t" * 10_000, "value": "v"}]}})),
        id="custom-name-10k",
    ),
    pytest.param(
        Hostile(INPUT, q(USER_BY_KEY, {"k": {"custom": [{"name": "tier\r\n", "value": "v"}]}})),
        id="custom-name-crlf",
    ),
    pytest.param(
        Hostile(INPUT, q(DELETE_PII, {"k": {"custom": [{"name": "crm", "value": "v\x1b[2J"}]}})),
        id="custom-value-escape-sequence",
    ),
    pytest.param(
        Hostile(INPUT, q('{ user(key: {uuid: "u\\u0000-1"}) { name } }')),
        id="escaped-nul-in-literal",
    ),
    # --- HTTP shapes GraphQL never sees ---------------------------------------------------
    pytest.param(Hostile(BAD, [q("{ __typename }")] * 11, status=400), id="batch-over-max-batch"),
    pytest.param(Hostile(BAD, [], status=400), id="batch-empty"),
    pytest.param(Hostile(BAD, [1], status=400), id="batch-of-a-number"),
    pytest.param(Hostile(BAD, 1, status=400), id="body-number"),
    pytest.param(Hostile(BAD, "{ __typename }", status=400), id="body-string"),
    pytest.param(Hostile(BAD, content=b"null", status=400), id="body-null"),
    pytest.param(Hostile(BAD, True, status=400), id="body-true"),
    pytest.param(Hostile(BAD, content=b'{"query": ', status=400), id="body-truncated-json"),
    pytest.param(Hostile(BAD, content=b'{"query": "\xff\xfe"}', status=400), id="body-not-utf8"),
    pytest.param(
        Hostile(BAD, content=b'{"a": ' * 300 + b"1" + b"}" * 300, status=400), id="json-nesting-300"
    ),
    pytest.param(Hostile(BAD, {"query": 5}, status=400), id="query-not-a-string"),
    pytest.param(Hostile(BAD, {"variables": {}}, status=400), id="query-missing"),
    pytest.param(
        Hostile(BAD, {"query": "{ __typename }", "variables": [1]}, status=400),
        id="variables-not-an-object",
    ),
    pytest.param(
        Hostile(BAD, {"query": "{ __typename }", "operationName": {"x": 1}}, status=400),
        id="operation-name-not-a-string",
    ),
    pytest.param(
        Hostile(
            "PAYLOAD_TOO_LARGE",
            content=b'{"query": "' + b" " * 10_000_000 + b'{ __typename }"}',
            status=413,
        ),
        id="body-10mb",
    ),
    pytest.param(
        Hostile(
            BAD,
            content=b"{ __typename }",
            headers={"content-type": "text/plain"},
            status=415,
        ),
        id="text-plain-post",
    ),
    pytest.param(
        Hostile(
            BAD,
            content=b"query=%7B+__typename+%7D",
            headers={"content-type": "application/x-www-form-urlencoded"},
            status=415,
        ),
        id="form-post",
    ),
    pytest.param(
        Hostile(
            BAD,
            method="GET",
            headers={},
            params={"query": 'mutation { deletePii(key: {uuid: "x"}) { ok } }'},
            status=400,
        ),
        id="get-mutation",
    ),
]


@pytest.fixture
def settings() -> Settings:
    """The conftest's settings with introspection off, as in production."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        upsert_window_ms=5.0,
        public_url=GATEWAY_BASE,
        max_concurrency=8,
        introspection=False,
    )


@pytest.fixture
async def seeded(
    ucd_http: httpx.AsyncClient, hooks: HookRelay, settings: Settings
) -> AsyncIterator[GatewayHttp]:
    async with serve_gateway(settings, ucd_http, hooks) as gateway:
        user = {
            "key": {"uuid": SEED_UUID, "email": SEED_EMAIL, "phoneNumber": SEED_PHONE},
            "attributes": {"name": SEED_NAME, "surname": SEED_SURNAME},
        }
        data = await gateway.ok(UPSERT, {"input": {"users": [user]}})
        assert data["upsertUsers"]["successCount"] == 1, data
        yield gateway


async def send(client: httpx.AsyncClient, hostile: Hostile) -> httpx.Response:
    content = hostile.content
    if content is None:
        content = orjson.dumps(hostile.json)
    if hostile.method == "GET":
        return await client.get("/graphql", params=dict(hostile.params or {}))
    return await client.request(
        hostile.method, "/graphql", content=content, headers=dict(hostile.headers)
    )


#: Ten valid operations, reads and writes, each with the data it must answer.
CONTROL: list[tuple[str, dict[str, Any], Any]] = [
    ("{ __typename }", {}, {"__typename": "Query"}),
    (USER_BY_KEY, {"k": {"uuid": SEED_UUID}}, {"user": {"name": SEED_NAME}}),
    (USER_BY_KEY, {"k": {"email": SEED_EMAIL}}, {"user": {"name": SEED_NAME}}),
    (USER_BY_KEY, {"k": {"phoneNumber": SEED_PHONE}}, {"user": {"name": SEED_NAME}}),
    (
        USERS_BY_KEYS,
        {"k": [{"uuid": SEED_UUID}, {"uuid": "nobody-here"}]},
        {"users": [{"name": SEED_NAME}, None]},
    ),
    (
        UPSERT,
        {"input": {"users": [{"key": {"uuid": "control-1"}, "attributes": {"name": "Ctl"}}]}},
        {
            "upsertUsers": {
                "successCount": 1,
                "failureCount": 0,
                "results": [{"index": 0, "ok": True, "errors": []}],
            }
        },
    ),
    (USER_BY_KEY, {"k": {"uuid": "control-1"}}, {"user": {"name": "Ctl"}}),
    (
        UPSERT,
        {"input": {"users": [{"key": {"uuid": "u" * 1024}, "attributes": {"name": "Long"}}]}},
        {
            "upsertUsers": {
                "successCount": 1,
                "failureCount": 0,
                "results": [{"index": 0, "ok": True, "errors": []}],
            }
        },
    ),
    (USER_BY_KEY, {"k": {"uuid": "u" * 1024}}, {"user": {"name": "Long"}}),
    (
        "{ " + " ".join(f"a{i}: __typename" for i in range(50)) + " }",
        {},
        {f"a{i}": "Query" for i in range(50)},
    ),
]


async def test_every_hostile_request_gets_one_clear_error_and_no_ucd_call(
    seeded: GatewayHttp, ucd_calls: CallLog, caplog: pytest.LogCaptureFixture
) -> None:
    assert len(HOSTILE) >= 50
    caplog.set_level(logging.DEBUG)
    ucd_calls.clear()
    wrong: list[Any] = []
    for param in HOSTILE:
        (hostile,) = param.values
        response = await send(seeded.client, hostile)
        text = response.text
        body = orjson.loads(response.content)
        errors = body.get("errors") or []
        seen = (
            response.status_code,
            len(errors),
            errors[0]["extensions"]["code"] if errors else None,
            [leak for leak in LEAKS + PII if leak in text],
            ucd_calls.paths,
        )
        if seen != (hostile.status, hostile.errors, hostile.code, [], []):
            wrong.append((param.id, seen, text[:200]))
        ucd_calls.clear()
    assert wrong == [], "\n".join(repr(w)[:300] for w in wrong)

    for query, variables, data in CONTROL:
        assert await seeded.ok(query, variables) == data, query[:60]

    log = caplog.text
    assert "Traceback" not in log
    for pii in PII:
        assert pii not in log, pii
