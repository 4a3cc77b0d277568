"""Persisted documents over HTTP: Apollo's APQ handshake (POST and GET), trusted manifests
(Apollo's and GraphQL Codegen's), ``documentId``, trusted-only mode, caching of GETs, and
the bounds on what APQ may register (gateway/persisted/)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from graphql import DocumentNode
from graphql.language.parser import Parser
from pydantic import ValidationError

from gateway.persisted.manifest import ManifestError, load_manifest, parse_manifest, sha256_hex
from gateway.persisted.store import MemoryDocumentStore
from gateway.settings import Settings
from tests.gateway.conftest import CallLog, GatewayHttp, app_gateway, serve_gateway

MANIFESTS = Path(__file__).parent / "manifests"
APOLLO_MANIFEST = MANIFESTS / "apollo-persisted-query-manifest.json"
CODEGEN_MAP = MANIFESTS / "codegen-persisted-documents.json"

#: A document of both manifests, by its body.
USER_NAME = "query UserName($key: UserKey!) { user(key: $key) { insiderId name } }"
DELETE_USER = "mutation DeleteUser($key: UserKey!) { deleteUser(key: $key) { ok } }"
UPSERT = """
mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) { failureCount }
}
"""
ADA = {"key": {"uuid": "u-ada"}, "attributes": {"name": "Ada"}}
NOT_FOUND = {
    "message": "PersistedQueryNotFound",
    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
}


def apq(sha256: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


# --- a client doing what Apollo's persisted-queries link does -----------------------------


@dataclass
class Sent:
    """One HTTP request of the handshake: its method, whether it carried the query, and
    the answer."""

    method: str
    with_query: bool
    status: int
    body: Any
    cache_control: str | None


@dataclass
class ApqClient:
    """Apollo's link, in Python: send the hash alone (over GET when ``use_get`` and the
    document is not a mutation); on PersistedQueryNotFound send hash and query, by POST."""

    http: httpx.AsyncClient
    use_get: bool = False
    sent: list[Sent] = field(default_factory=list)

    async def execute(self, query: str, variables: dict[str, Any]) -> Any:
        extensions = apq(sha256_hex(query))
        body = await self._send(self.use_get and "mutation" not in query, extensions, variables)
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors", ())]
        messages = [e.get("message") for e in body.get("errors", ())]
        if "PersistedQueryNotFound" in messages or "PERSISTED_QUERY_NOT_FOUND" in codes:
            body = await self._send(False, extensions, variables, query=query)
        return body

    async def _send(
        self, get: bool, extensions: Any, variables: Any, *, query: str | None = None
    ) -> Any:
        if get:
            params = {"extensions": json.dumps(extensions), "variables": json.dumps(variables)}
            response = await self.http.get("/graphql", params=params)
        else:
            payload = {"extensions": extensions, "variables": variables}
            if query is not None:
                payload["query"] = query
            response = await self.http.post("/graphql", json=payload)
        body = orjson.loads(response.content)
        self.sent.append(
            Sent(
                "GET" if get else "POST",
                query is not None,
                response.status_code,
                body,
                response.headers.get("cache-control"),
            )
        )
        return body


async def write_ada(gw: GatewayHttp) -> None:
    data = await gw.ok(UPSERT, {"users": [ADA]})
    assert data["upsertUsers"]["failureCount"] == 0


async def test_apq_handshake_over_post(gateway_http: GatewayHttp, ucd_calls: CallLog) -> None:
    """Hash alone: not found, at no UCD cost; hash and query: answered and registered;
    from then on the hash alone is answered, also for another client."""
    await write_ada(gateway_http)
    ucd_calls.clear()
    first = ApqClient(gateway_http.client)
    answer = await first.execute(USER_NAME, {"key": {"uuid": "u-ada"}})
    assert answer["data"]["user"]["name"] == "Ada"
    assert [(s.method, s.with_query, s.status) for s in first.sent] == [
        ("POST", False, 200),
        ("POST", True, 200),
    ]
    assert first.sent[0].body == {"data": None, "errors": [NOT_FOUND]}
    assert len(ucd_calls.profiles) == 1  # the not-found step cost nothing

    later = ApqClient(gateway_http.client)
    again = await later.execute(USER_NAME, {"key": {"uuid": "u-ada"}})
    assert again["data"] == answer["data"]
    assert [(s.method, s.with_query) for s in later.sent] == [("POST", False)]
    assert later.sent[0].cache_control is None  # POST answers are never marked cacheable


async def test_apq_handshake_over_get_and_the_get_is_cacheable(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    await write_ada(gateway_http)
    client = ApqClient(gateway_http.client, use_get=True)
    first = await client.execute(USER_NAME, {"key": {"uuid": "u-ada"}})
    second = await client.execute(USER_NAME, {"key": {"uuid": "u-ada"}})
    assert first["data"] == second["data"] == {"user": {"insiderId": ANY_ID, "name": "Ada"}}
    assert [(s.method, s.with_query, s.status) for s in client.sent] == [
        ("GET", False, 200),
        ("POST", True, 200),
        ("GET", False, 200),
    ]
    # The not-found answer and the POST are not cacheable; the persisted GET is.
    assert [s.cache_control for s in client.sent] == [None, None, "private, max-age=60"]


class _AnyId:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY_ID: Any = _AnyId()


async def test_cache_control_comes_from_its_setting_and_never_marks_errors() -> None:
    query = "query Missing($key: UserKey!) { user(key: $key) { name } }"
    async with app_gateway(persisted_cache_control="public, max-age=5") as (client, _):
        await client.post("/graphql", json={"query": query, "extensions": apq(sha256_hex(query))})
        params = {"extensions": json.dumps(apq(sha256_hex(query)))}
        ok = await client.get(
            "/graphql", params={**params, "variables": json.dumps({"key": {"uuid": "nobody"}})}
        )
        refused = await client.get(
            "/graphql", params={**params, "variables": json.dumps({"key": {"email": "x"}})}
        )
    assert ok.json()["data"] == {"user": None}
    assert ok.headers["cache-control"] == "public, max-age=5"
    assert ok.headers["vary"] == "Accept"
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "cache-control" not in refused.headers


async def test_get_never_runs_a_persisted_mutation() -> None:
    """A trusted mutation named over GET is refused (400) before any UCD call, and its
    answer is not marked cacheable."""
    calls: list[httpx.Request] = []

    def ucd(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={})

    async with app_gateway(ucd, trusted_documents=APOLLO_MANIFEST) as (client, _):
        response = await client.get(
            "/graphql",
            params={
                "documentId": f"sha256:{sha256_hex(DELETE_USER)}",
                "variables": json.dumps({"key": {"uuid": "u-1"}}),
            },
        )
    assert response.status_code == 400
    assert "mutations are not allowed" in response.json()["errors"][0]["message"]
    assert "cache-control" not in response.headers
    assert calls == []


async def test_a_hash_that_is_not_the_querys_registers_nothing() -> None:
    other = sha256_hex("{ somethingElse }")
    async with app_gateway() as (client, _):
        mismatch = await client.post(
            "/graphql", json={"query": "{ __typename }", "extensions": apq(other)}
        )
        later = await client.post("/graphql", json={"extensions": apq(other)})
    (error,) = mismatch.json()["errors"]
    assert error["extensions"] == {"code": "PERSISTED_QUERY_HASH_MISMATCH"}
    assert "sha256Hash" in error["message"]
    assert later.json()["errors"] == [NOT_FOUND]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        pytest.param("{ " + "a: __typename " * 3 + "}", "GRAPHQL_VALIDATION_FAILED", id="aliases"),
        pytest.param("{ " + "__typename " * 30 + "}", "GRAPHQL_PARSE_FAILED", id="tokens"),
        pytest.param("{ " + " " * 400 + "__typename }", "GRAPHQL_PARSE_FAILED", id="length"),
        pytest.param("{ __typename ", "GRAPHQL_PARSE_FAILED", id="syntax"),
    ],
)
async def test_apq_does_not_register_a_document_over_the_limits(query: str, code: str) -> None:
    """Registration meets the limits every document meets, so APQ cannot park huge
    texts in memory: the refused text is answered as usual and never stored."""
    async with app_gateway(max_aliases=2, max_tokens=20) as (client, app):
        sent = await client.post(
            "/graphql", json={"query": query, "extensions": apq(sha256_hex(query))}
        )
        again = await client.post("/graphql", json={"extensions": apq(sha256_hex(query))})
        route = app.routes[0]
    assert sent.json()["errors"][0]["extensions"]["code"] == code
    assert again.json()["errors"] == [NOT_FOUND]
    assert len(route.endpoint._documents.store) == 0  # type: ignore[attr-defined]


async def test_a_document_registered_and_run_in_one_request_is_parsed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registration checks the limits through the parser cache, so the request that
    registers a text runs the document it parsed: graphql-core's parser runs once."""
    query = f'{{ user(key: {{uuid: "u-{uuid.uuid4()}"}}) {{ name }} }}'
    parsed: list[str] = []
    parse_document = Parser.parse_document

    def counted(parser: Parser) -> DocumentNode:
        parsed.append(parser._lexer.source.body)
        return parse_document(parser)

    async with app_gateway() as (client, _):
        monkeypatch.setattr(Parser, "parse_document", counted)
        sent = await client.post(
            "/graphql", json={"query": query, "extensions": apq(sha256_hex(query))}
        )
    assert sent.json()["data"] == {"user": None}
    assert parsed == [query]


async def test_the_apq_store_forgets_the_least_recently_used_document() -> None:
    one, two, three = "{ __typename }", "query B { __typename }", "query C { __typename }"
    chars = len(one) + len(two)
    async with app_gateway(persisted_store_chars=chars + 5) as (client, _):
        for query in (one, two):
            await client.post(
                "/graphql", json={"query": query, "extensions": apq(sha256_hex(query))}
            )
        await client.post("/graphql", json={"extensions": apq(sha256_hex(one))})  # used again
        await client.post("/graphql", json={"query": three, "extensions": apq(sha256_hex(three))})
        answers = [
            (await client.post("/graphql", json={"extensions": apq(sha256_hex(q))})).json()
            for q in (one, two, three)
        ]
    assert [a.get("errors") for a in answers] == [None, [NOT_FOUND], None]


async def test_memory_store_bounds_its_characters() -> None:
    store = MemoryDocumentStore(max_chars=10)
    await store.put("big", "x" * 11)  # larger than the whole store: not kept
    await store.put("a", "aaaa")
    await store.put("b", "bbbb")
    await store.put("a", "aaaaa")  # replaced, counted once
    assert (len(store), store.chars) == (2, 9)
    await store.get("b")  # b is now the most recent
    await store.put("c", "cc")
    assert [await store.get(k) for k in ("big", "a", "b", "c")] == [None, None, "bbbb", "cc"]
    assert store.chars == 6


# --- trusted documents ------------------------------------------------------------------------


@pytest.mark.parametrize("manifest", [APOLLO_MANIFEST, CODEGEN_MAP], ids=["apollo", "codegen"])
def test_both_manifest_formats_load(manifest: Path) -> None:
    trusted = load_manifest(manifest)
    assert len(trusted) == 3
    sha256 = sha256_hex(USER_NAME)
    assert trusted.find(f"sha256:{sha256}") == USER_NAME
    assert trusted.find(f"sha256:{sha256.upper()}") == USER_NAME
    assert trusted.find(sha256) == USER_NAME  # the manifest's own id
    assert trusted.by_sha256[sha256_hex(DELETE_USER)] == DELETE_USER
    assert trusted.find("sha256:" + "0" * 64) is None


def test_a_custom_id_of_an_apollo_manifest_names_its_document() -> None:
    trusted = parse_manifest(
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{"id": "op-7", "body": "{ __typename }", "name": "T", "type": "query"}],
        },
        source="inline",
    )
    assert trusted.find("op-7") == "{ __typename }"
    assert trusted.find(f"sha256:{sha256_hex('{ __typename }')}") == "{ __typename }"


@pytest.mark.parametrize(
    ("content", "mentions"),
    [
        pytest.param(b"{nope", "are not JSON", id="not-json"),
        pytest.param(b"[1, 2]", "neither an Apollo", id="a-list"),
        pytest.param(b'{"a": 1}', "neither an Apollo", id="map-of-numbers"),
        pytest.param(
            b'{"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}',
            "only version 1",
            id="apollo-version-2",
        ),
        pytest.param(
            b'{"format": "apollo-persisted-query-manifest", "version": 1, "operations": {}}',
            "`operations` must be a list",
            id="apollo-operations-object",
        ),
        pytest.param(
            b'{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{}]}',
            "operations[0]",
            id="apollo-operation-without-body",
        ),
        pytest.param(b'{"abc": "query {"}', "'abc' is not GraphQL", id="broken-document"),
    ],
)
def test_a_broken_manifest_stops_the_start_naming_the_file(
    tmp_path: Path, content: bytes, mentions: str
) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=r"manifest\.json") as raised:
        load_manifest(path)
    assert mentions in str(raised.value)


def test_a_missing_manifest_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read the trusted documents"):
        load_manifest(tmp_path / "absent.json")


def test_trusted_only_needs_a_manifest() -> None:
    with pytest.raises(ValidationError, match="UCD_GATEWAY_TRUSTED_DOCUMENTS"):
        Settings(_env_file=None, trusted_documents_only=True)  # type: ignore[call-arg]


@pytest.fixture(params=[APOLLO_MANIFEST, CODEGEN_MAP], ids=["apollo", "codegen"])
async def trusted_only(
    request: pytest.FixtureRequest,
    ucd_http: httpx.AsyncClient,
    settings: Settings,
) -> AsyncIterator[GatewayHttp]:
    """The gateway in trusted-only mode with one of the two manifests."""
    only = settings.model_copy(
        update={"trusted_documents": request.param, "trusted_documents_only": True}
    )
    async with serve_gateway(only, ucd_http) as served:
        yield served


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({"query": "{ __typename }"}, "TRUSTED_DOCUMENT_REQUIRED", id="query"),
        pytest.param(
            {"query": "{ __typename }", "extensions": apq(sha256_hex("{ __typename }"))},
            "TRUSTED_DOCUMENT_REQUIRED",
            id="apq-registration",
        ),
        pytest.param(
            {"extensions": apq(sha256_hex("{ __typename }"))},
            "PERSISTED_QUERY_NOT_FOUND",
            id="unknown-hash",
        ),
        pytest.param(
            {"documentId": "sha256:" + "0" * 64}, "PERSISTED_QUERY_NOT_FOUND", id="unknown-id"
        ),
        pytest.param(
            {
                "query": USER_NAME.replace("name", "email"),
                "variables": {"key": {"uuid": "u-ada"}},
            },
            "TRUSTED_DOCUMENT_REQUIRED",
            id="a-trusted-document-edited",
        ),
    ],
)
async def test_trusted_only_refuses_any_other_document_with_no_ucd_call(
    trusted_only: GatewayHttp, ucd_calls: CallLog, body: dict[str, Any], code: str
) -> None:
    response = await trusted_only.client.post("/graphql", json=body)
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": code}
    assert ucd_calls.calls == []
    # And APQ registration did not slip it in: the hash alone is still unknown.
    if "query" in body:
        again = await trusted_only.client.post(
            "/graphql", json={"extensions": apq(sha256_hex(body["query"]))}
        )
        assert again.json()["errors"] == [NOT_FOUND]


@pytest.mark.parametrize(
    "naming",
    [
        pytest.param({"documentId": f"sha256:{sha256_hex(USER_NAME)}"}, id="document-id"),
        pytest.param({"documentId": sha256_hex(USER_NAME)}, id="manifest-id"),
        pytest.param({"extensions": apq(sha256_hex(USER_NAME))}, id="apq-hash"),
        pytest.param({"query": USER_NAME}, id="the-same-text"),
    ],
)
async def test_trusted_only_runs_the_manifests_documents(
    trusted_only: GatewayHttp, ucd_calls: CallLog, naming: dict[str, Any]
) -> None:
    response = await trusted_only.client.post(
        "/graphql", json={**naming, "variables": {"key": {"uuid": "nobody"}}}
    )
    assert response.json()["data"] == {"user": None}
    assert len(ucd_calls.profiles) == 1


async def test_a_document_id_names_an_apq_registered_document_when_not_trusted_only() -> None:
    query = "query Registered { __typename }"
    async with app_gateway() as (client, _):
        before = await client.post("/graphql", json={"documentId": f"sha256:{sha256_hex(query)}"})
        await client.post("/graphql", json={"query": query, "extensions": apq(sha256_hex(query))})
        after = await client.get("/graphql", params={"documentId": f"sha256:{sha256_hex(query)}"})
    assert before.json()["errors"] == [NOT_FOUND]
    assert after.json()["data"] == {"__typename": "Query"}
    assert after.headers["cache-control"] == "private, max-age=60"


async def test_a_get_naming_a_document_is_not_taken_for_graphiql() -> None:
    """A browser's GET without ``query`` gets GraphiQL; a GET naming a persisted document
    (Apollo's link sends ``Accept: */*``) is answered as GraphQL."""
    async with app_gateway(trusted_documents=CODEGEN_MAP) as (client, _):
        page = await client.get("/graphql", headers={"Accept": "*/*"})
        named = await client.get(
            "/graphql",
            params={"extensions": json.dumps(apq(sha256_hex("query Typename { __typename }")))},
            headers={"Accept": "*/*"},
        )
    assert page.headers["content-type"].startswith("text/html")
    assert named.json()["data"] == {"__typename": "Query"}
