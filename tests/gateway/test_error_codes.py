"""The table of error codes (gateway/error_codes.py): the README documents exactly it,
the error classes take their codes from it, and every code is answered over HTTP."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from gateway.app import admission_of
from gateway.error_codes import ERROR_CODES, CodeDoc, ErrorCode
from gateway.errors import (
    BadUserInput,
    Conflict,
    Forbidden,
    GatewayError,
    NotFound,
    RateLimited,
    StateUnavailable,
    UpstreamAuth,
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamUnavailable,
)
from tests.gateway.conftest import USER_QUERY, app_gateway, free_port_url

README = Path(__file__).parents[2] / "README.md"
TRUSTED_MANIFEST = Path(__file__).parent / "manifests" / "apollo-persisted-query-manifest.json"
#: One API key, of the reader persona (tests/gateway/auth/conftest.py): profile:read only.
KEYS_FILE = Path(__file__).parent / "auth" / "keys.toml"
#: The paragraph the README's error table follows.
README_SECTION = "Errors carry a stable `extensions.code`"


# --- the README's table ------------------------------------------------------------------


def _readme_rows() -> Iterator[list[str]]:
    """The cells of each row of the first table after ``README_SECTION``."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(README_SECTION)), None)
    assert start is not None, f"README.md has no paragraph starting {README_SECTION!r}"
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    assert len(table) > 2, "README.md's error section has no table"
    header, _rule, *rows = table
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "code",
        "when",
        "extra extensions",
    ]
    for row in rows:
        yield [cell.strip() for cell in row.strip().strip("|").split("|")]


def _extras(cell: str) -> tuple[tuple[str, str], ...]:
    """``"`path`: where; `status`: what"`` -> ``(("path", "where"), ("status", "what"))``."""
    found = []
    for item in filter(None, (part.strip() for part in cell.split(";"))):
        match = re.fullmatch(r"`(\w+)`: (.+)", item)
        assert match is not None, f"README extra extension {item!r} is not `key`: meaning"
        found.append((match[1], match[2].replace("`", "")))
    return tuple(found)


def readme_table() -> dict[str, CodeDoc]:
    """The README's table as the module spells it (backticks are the README's markup)."""
    table: dict[str, CodeDoc] = {}
    for code, when, extras in _readme_rows():
        assert re.fullmatch(r"`[A-Z_]+`", code), f"README code cell {code!r} is not `CODE`"
        assert code.strip("`") not in table, f"README lists {code} twice"
        table[code.strip("`")] = CodeDoc(when.replace("`", ""), _extras(extras))
    return table


def _row(code: str, doc: CodeDoc) -> str:
    extras = "; ".join(f"`{key}`: {meaning}" for key, meaning in doc.extensions)
    return (
        "|"
        + "|".join(f" {cell} " if cell else " " for cell in (f"`{code}`", doc.when, extras))
        + "|"
    )


def test_readme_error_table_is_the_code_table() -> None:
    """A code added without documentation, or documented but gone, fails here."""
    documented = readme_table()
    table = {code.value: doc for code, doc in ERROR_CODES.items()}
    undocumented = [_row(c, d) for c, d in table.items() if c not in documented]
    assert not undocumented, "codes missing from README.md's table:\n" + "\n".join(undocumented)
    unknown = sorted(set(documented) - set(table))
    assert not unknown, f"README.md documents codes gateway/error_codes.py lacks: {unknown}"
    stale = [_row(c, d) for c, d in table.items() if documented[c] != d]
    assert not stale, "README.md rows that differ from gateway/error_codes.py:\n" + "\n".join(stale)
    assert list(documented) == list(table), "README.md lists the codes in another order"


def test_every_code_has_a_documented_meaning() -> None:
    assert list(ERROR_CODES) == list(ErrorCode)
    for code, doc in ERROR_CODES.items():
        assert code.value == code.name
        assert doc.when
        assert all(key and meaning for key, meaning in doc.extensions), code


def _subclasses(cls: type[GatewayError]) -> Iterator[type[GatewayError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


#: Each error class and the code it must answer with, written out: the classes take
#: theirs from ErrorCode, and this is what they must have taken.
EXPECTED_CODES: Mapping[type[GatewayError], str] = {
    GatewayError: "INTERNAL_SERVER_ERROR",
    BadUserInput: "BAD_USER_INPUT",
    NotFound: "NOT_FOUND",
    Conflict: "CONFLICT",
    RateLimited: "RATE_LIMITED",
    UpstreamAuth: "UPSTREAM_AUTH",
    UpstreamUnavailable: "UPSTREAM_UNAVAILABLE",
    UpstreamError: "UPSTREAM_ERROR",
    UpstreamOutcomeUnknown: "UPSTREAM_OUTCOME_UNKNOWN",
    StateUnavailable: "STATE_UNAVAILABLE",
    Forbidden: "FORBIDDEN",
}


def test_gateway_errors_take_their_code_from_the_table() -> None:
    raised = [
        GatewayError("m"),
        BadUserInput("m", path="key"),
        NotFound("m"),
        Conflict("m"),
        RateLimited("m", retry_after=1),
        UpstreamAuth("m"),
        UpstreamUnavailable("m"),
        UpstreamUnavailable("m", retry_after=3),
        UpstreamError("m", status=500),
        UpstreamOutcomeUnknown("m"),
        StateUnavailable("m"),
        Forbidden("m", scope="pii:read"),
    ]
    assert {type(e) for e in raised} == {GatewayError, *_subclasses(GatewayError)}
    assert set(EXPECTED_CODES) == {type(e) for e in raised}, "add the new class's code"
    for error in raised:
        expected = EXPECTED_CODES[type(error)]
        code = error.extensions["code"]
        # A plain str on the wire and in logs, the code this class must answer with.
        assert type(code) is str
        assert (error.code, code) == (expected, expected), type(error)
        declared = {key for key, _ in ERROR_CODES[error.code].extensions}
        assert set(error.extensions) - {"code"} <= declared, type(error)


# --- every code, over HTTP -----------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def _answer(status: int, body: Any, **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return handler


def _raise(exc: Callable[[httpx.Request], BaseException]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc(request)

    return handler


def _no_call(request: httpx.Request) -> httpx.Response:
    # The gateway answers these itself; a UCD call would be a bug (masked, so it fails
    # the code assertion with INTERNAL_SERVER_ERROR).
    raise AssertionError(f"unexpected UCD call {request.url.path}")


@dataclass(frozen=True)
class Provocation:
    """A request that must be answered with one code, and the extra keys that come with it."""

    query: str
    ucd: Handler = _no_call
    settings: Mapping[str, Any] = field(default_factory=dict)
    status: int = 200
    extras: frozenset[str] = frozenset()
    #: The JSON body to post instead of ``{"query": query}``.
    body: Any = None
    #: Done to the running app before the request is sent.
    prepare: Callable[[Starlette], None] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


PROVOCATIONS: Mapping[ErrorCode, Provocation] = {
    ErrorCode.BAD_USER_INPUT: Provocation(
        '{ user(key: {email: "nope"}) { name } }', extras=frozenset({"path"})
    ),
    ErrorCode.NOT_FOUND: Provocation(
        'mutation { deleteUser(key: {uuid: "nobody"}) { ok } }',
        _answer(404, {"error": "user: no data"}),
    ),
    ErrorCode.CONFLICT: Provocation(
        'mutation { updateIdentifier(old: {email: "a@example.com"}, '
        'new: {email: "b@example.com"}) { ok } }',
        _answer(400, {"error": "new identifier already has a user assigned to it"}),
    ),
    ErrorCode.RATE_LIMITED: Provocation(
        USER_QUERY,
        _answer(429, {"error": "slow down"}, **{"Retry-After": "7"}),
        extras=frozenset({"retryAfter"}),
    ),
    ErrorCode.UPSTREAM_UNAVAILABLE: Provocation(
        USER_QUERY, _raise(lambda r: httpx.ConnectError("refused", request=r))
    ),
    ErrorCode.UPSTREAM_ERROR: Provocation(
        USER_QUERY, _answer(500, {"error": "boom"}), extras=frozenset({"status"})
    ),
    ErrorCode.UPSTREAM_AUTH: Provocation(USER_QUERY, _answer(401, {"error": "who?"})),
    ErrorCode.INTERNAL_SERVER_ERROR: Provocation(
        USER_QUERY, _raise(lambda r: RuntimeError("bug")), extras=frozenset({"errorId"})
    ),
    ErrorCode.GRAPHQL_PARSE_FAILED: Provocation("{ user("),
    ErrorCode.GRAPHQL_VALIDATION_FAILED: Provocation("{ nope }"),
    ErrorCode.PAYLOAD_TOO_LARGE: Provocation(
        "{ " + "__typename " * 30 + "}", settings={"max_body_bytes": 200}, status=413
    ),
    ErrorCode.MAX_COST_EXCEEDED: Provocation(
        '{ a: user(key: {uuid: "a"}) { name } b: user(key: {uuid: "b"}) { name } }',
        settings={"max_ucd_calls_per_operation": 1},
    ),
    ErrorCode.UPSTREAM_OUTCOME_UNKNOWN: Provocation(
        'mutation { deleteUser(key: {uuid: "u-1"}) { ok } }',
        _raise(lambda r: httpx.ReadError("connection reset", request=r)),
    ),
    ErrorCode.BAD_REQUEST: Provocation("", body="{ __typename }", status=400),
    ErrorCode.STATE_UNAVAILABLE: Provocation(
        '{ exportJob(id: "job-1") { status } }',
        # A Redis that refuses connections: the job cannot be read, and no UCD call is made.
        settings={"redis_url": free_port_url().replace("http://", "redis://")},
    ),
    ErrorCode.OVERLOADED: Provocation(
        USER_QUERY,
        prepare=lambda app: admission_of(app).start_draining(),
        status=503,
        extras=frozenset({"retryAfter"}),
    ),
    ErrorCode.PERSISTED_QUERY_NOT_FOUND: Provocation(
        "", body={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}
    ),
    ErrorCode.PERSISTED_QUERY_HASH_MISMATCH: Provocation(
        "",
        body={
            "query": USER_QUERY,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}},
        },
    ),
    ErrorCode.TRUSTED_DOCUMENT_REQUIRED: Provocation(
        USER_QUERY,
        settings={"trusted_documents": TRUSTED_MANIFEST, "trusted_documents_only": True},
    ),
    ErrorCode.UNAUTHENTICATED: Provocation(
        USER_QUERY, settings={"api_keys_file": KEYS_FILE}, status=401
    ),
    ErrorCode.FORBIDDEN: Provocation(
        'mutation { deleteUser(key: {uuid: "u-1"}) { ok } }',
        settings={"api_keys_file": KEYS_FILE},
        headers={"Authorization": "Bearer ucdg_test-key-of-reader"},
        extras=frozenset({"scope"}),
    ),
    ErrorCode.AUDIT_UNAVAILABLE: Provocation(
        # A full disk: the mutation's audit line cannot be written, so no UCD call is made.
        'mutation { deleteUser(key: {uuid: "u-1"}) { ok } }',
        settings={"audit_log": "/dev/full"},
    ),
}


async def test_the_callers_own_rate_limit_is_429_with_retry_after() -> None:
    """RATE_LIMITED from the gateway's own limit (the UCD's 429 is provoked above): the
    request is refused before any UCD call, with the HTTP status and header."""
    async with app_gateway(_no_call, rate_limit="1/hour") as (client, _):
        first = await client.post("/graphql", json={"query": "{ __typename }"})
        refused = await client.post("/graphql", json={"query": USER_QUERY})
    assert first.status_code == 200
    assert refused.status_code == 429
    (error,) = orjson.loads(refused.content)["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after = error["extensions"]["retryAfter"]
    assert 1 <= retry_after <= 3600
    assert refused.headers["retry-after"] == str(retry_after)


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
async def test_every_code_is_answered_over_http(code: ErrorCode) -> None:
    """Each code of the table, provoked through the app; a new code needs a request here."""
    provocation = PROVOCATIONS.get(code)
    assert provocation is not None, f"add a request answered with {code} to PROVOCATIONS"
    async with app_gateway(provocation.ucd, **provocation.settings) as (client, app):
        if provocation.prepare is not None:
            provocation.prepare(app)
        body = provocation.body if provocation.body is not None else {"query": provocation.query}
        response = await client.post("/graphql", json=body, headers=dict(provocation.headers))
    assert response.status_code == provocation.status
    assert response.headers["content-type"].startswith("application/json")
    (error,) = orjson.loads(response.content)["errors"]
    extensions = error["extensions"]
    assert extensions["code"] == code.value
    assert set(extensions) - {"code"} == provocation.extras
    assert provocation.extras <= {key for key, _ in ERROR_CODES[code].extensions}
    if "errorId" in extensions:
        assert uuid.UUID(extensions["errorId"])
