"""The request pipeline's common stages (§2.1 routing, §2.2 authentication, §2.4 body checks).

Each stage is observed through the next one: a request that passes authentication with an
invalid JSON body answers the §2.4 JSON error, so these tests do not depend on any handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from gateway.local_ucd.bodies import MAX_BODY_BYTES
from gateway.local_ucd.http import ACCESS_DENIED, INVALID_JSON
from tests.local_ucd.conftest import AUTH, OTHER_TOKEN, PARTNER, TOKEN, make_client

NOT_FOUND = {"error": "not found"}
METHOD_NOT_ALLOWED = {"error": "method not allowed"}
EMPTY_PARTNER = {"success": False, "message": "Empty Partner"}
EMPTY_TOKEN = {"success": False, "message": "Empty Token"}
PARTNER_INVALID = {"success": False, "message": "Partner is invalid."}
CONTENT_TYPE = {"error": "content type must be application/json"}
TOO_BIG = {"error": "request body is bigger than maximum allowed size 5,000,000 bytes"}

JSON = {"Content-Type": "application/json"}
#: An authenticated JSON request whose body fails the JSON check: it proves the request
#: got past routing, authentication, the content-type and the size check.
BROKEN_JSON = b"{"

INSIDER_ENDPOINTS = [
    pytest.param("POST", "/api/user/v1/upsert", id="upsert"),
    pytest.param("POST", "/api/user/v1/profile", id="profile"),
    pytest.param("POST", "/api/raw/v1/export", id="export"),
    pytest.param("POST", "/api/user/v1/attribute/delete", id="attribute_delete"),
    pytest.param("PATCH", "/api/user/v1/identity", id="identity_update"),
    pytest.param("DELETE", "/api/user/v1/identity", id="identity_delete"),
    pytest.param("POST", "/api/contact/v1/anonymize", id="anonymize_contact"),
    pytest.param("POST", "/api/user/v1/anonymize", id="anonymize_user"),
    pytest.param("POST", "/api/user/v1/delete", id="delete_user"),
    pytest.param("POST", "/api/user/v3/metadata/columns", id="metadata_columns"),
    pytest.param("POST", "/api/local/v1/segments", id="create_segment"),
    pytest.param("POST", "/api/local/v1/attributes", id="declare_attribute"),
]


@pytest.fixture
async def anonymous(ucd_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sends no partner headers."""
    async with make_client(ucd_app, {}) as client:
        yield client


# --- §2.1 routing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/user/v1/upsert/",  # no trailing-slash variants
        "/api/user/v1/Upsert",  # exact, case-sensitive
        "/api/user/v2/upsert",
        "/api/raw/v2/export",  # v2 export is out of scope (§1)
        "/api/user/v1",
        "/",
        "/openapi.json/",
    ],
)
async def test_unknown_path_is_404_before_authentication(
    anonymous: httpx.AsyncClient, path: str
) -> None:
    response = await anonymous.post(path, json={})
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("GET", "/api/user/v1/upsert", {"POST"}, id="get-upsert"),
        pytest.param("PUT", "/api/user/v1/profile", {"POST"}, id="put-profile"),
        pytest.param("POST", "/api/user/v1/identity", {"PATCH", "DELETE"}, id="post-identity"),
        pytest.param("DELETE", "/api/local/v1/segments", {"GET", "POST"}, id="delete-segments"),
        pytest.param("POST", "/healthz", {"GET"}, id="post-healthz"),
        pytest.param("POST", "/openapi.json", {"GET"}, id="post-openapi"),
    ],
)
async def test_other_method_is_405_with_allow_before_authentication(
    anonymous: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await anonymous.request(method, path, json={})
    assert response.status_code == 405
    assert response.json() == METHOD_NOT_ALLOWED
    allow = {m.strip() for m in response.headers["allow"].split(",")}
    # Starlette also lists HEAD beside GET, which is true: it serves HEAD for GET routes.
    assert allow - {"HEAD"} == allowed


async def test_query_strings_are_ignored(ucd: httpx.AsyncClient) -> None:
    response = await ucd.post(
        "/api/user/v1/upsert?users=1&debug=true", content=BROKEN_JSON, headers=JSON
    )
    assert response.json() == INVALID_JSON


# --- §2.2 authentication -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        pytest.param({}, 400, EMPTY_PARTNER, id="no-headers"),
        pytest.param({"X-REQUEST-TOKEN": TOKEN}, 400, EMPTY_PARTNER, id="no-partner"),
        pytest.param(
            {"X-PARTNER-NAME": "", "X-REQUEST-TOKEN": TOKEN}, 400, EMPTY_PARTNER, id="empty-partner"
        ),
        pytest.param(
            {"X-PARTNER-NAME": "   ", "X-REQUEST-TOKEN": TOKEN},
            400,
            EMPTY_PARTNER,
            id="blank-partner",
        ),
        pytest.param({"X-PARTNER-NAME": PARTNER}, 400, EMPTY_TOKEN, id="no-token"),
        pytest.param(
            {"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": ""}, 400, EMPTY_TOKEN, id="empty-token"
        ),
        # Check 2 comes before check 3: an invalid partner without a token is Empty Token.
        pytest.param({"X-PARTNER-NAME": "MyBrand"}, 400, EMPTY_TOKEN, id="invalid-no-token"),
        pytest.param(
            {"X-PARTNER-NAME": "MyBrand", "X-REQUEST-TOKEN": TOKEN},
            400,
            PARTNER_INVALID,
            id="upper-case-never-lowered",
        ),
        pytest.param(
            {"X-PARTNER-NAME": "my.brand", "X-REQUEST-TOKEN": TOKEN},
            400,
            PARTNER_INVALID,
            id="dot",
        ),
        pytest.param(
            {"X-PARTNER-NAME": "a" * 65, "X-REQUEST-TOKEN": TOKEN},
            400,
            PARTNER_INVALID,
            id="65-chars",
        ),
        pytest.param(
            {"X-PARTNER-NAME": "a" * 64, "X-REQUEST-TOKEN": TOKEN},
            403,
            ACCESS_DENIED,
            id="64-chars-unknown",
        ),
        pytest.param(
            {"X-PARTNER-NAME": "unknown_partner-1", "X-REQUEST-TOKEN": TOKEN},
            403,
            ACCESS_DENIED,
            id="unknown-partner",
        ),
        pytest.param(
            {"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": "wrong"},
            403,
            ACCESS_DENIED,
            id="wrong-token",
        ),
        pytest.param(
            {"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": OTHER_TOKEN},
            403,
            ACCESS_DENIED,
            id="another-partners-token",
        ),
        pytest.param(
            {"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": TOKEN + "x"},
            403,
            ACCESS_DENIED,
            id="token-prefix",
        ),
    ],
)
async def test_authentication_checks_in_order(
    ucd_app: Starlette, headers: dict[str, str], status: int, body: dict[str, object]
) -> None:
    async with make_client(ucd_app, headers) as client:
        # A broken body and no content type: authentication answers before the body checks.
        response = await client.post("/api/user/v1/upsert", content=BROKEN_JSON)
    assert response.status_code == status
    assert response.json() == body
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("method", "path"), INSIDER_ENDPOINTS)
async def test_every_api_endpoint_requires_authentication(
    anonymous: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await anonymous.request(method, path, content=b"{}", headers=JSON)
    assert response.status_code == 400
    assert response.json() == EMPTY_PARTNER


async def test_local_get_endpoints_require_authentication(anonymous: httpx.AsyncClient) -> None:
    for path in ("/api/local/v1/segments", "/api/local/v1/attributes"):
        response = await anonymous.get(path)
        assert response.json() == EMPTY_PARTNER, path


async def test_head_on_a_local_get_endpoint_answers_like_get(ucd: httpx.AsyncClient) -> None:
    for path in ("/api/local/v1/segments", "/api/local/v1/attributes"):
        response = await ucd.head(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"


async def test_header_names_are_case_insensitive_and_values_stripped(ucd_app: Starlette) -> None:
    headers = {"x-partner-name": f"  {PARTNER}\t", "x-request-token": f" {TOKEN} "}
    async with make_client(ucd_app, headers) as client:
        response = await client.post("/api/user/v1/upsert", content=BROKEN_JSON, headers=JSON)
    assert response.json() == INVALID_JSON  # authenticated: the JSON check answered


async def test_healthz_and_openapi_need_no_headers(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await anonymous.get("/openapi.json")).status_code == 200


# --- §2.4 body checks ---------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "APPLICATION/JSON;charset=UTF-8",
        "application/json ; boundary=x",
    ],
)
async def test_json_media_type_is_accepted_whatever_case_and_parameters(
    ucd: httpx.AsyncClient, content_type: str
) -> None:
    response = await ucd.post(
        "/api/user/v1/upsert", content=BROKEN_JSON, headers={"Content-Type": content_type}
    )
    assert response.json() == INVALID_JSON


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/jsonx", "application/x-www-form-urlencoded", "json", ""],
)
async def test_other_media_types_are_rejected(ucd: httpx.AsyncClient, content_type: str) -> None:
    response = await ucd.post(
        "/api/user/v1/upsert", content=b"{}", headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json() == CONTENT_TYPE


@pytest.mark.parametrize(
    ("method", "path"),
    [p for p in INSIDER_ENDPOINTS if p.id != "identity_delete"],
)
async def test_missing_content_type_is_rejected(
    ucd: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await ucd.request(method, path, content=b"{}")
    assert "content-type" not in response.request.headers
    assert response.status_code == 400
    assert response.json() == CONTENT_TYPE


async def test_missing_content_type_is_accepted_on_identity_delete(ucd: httpx.AsyncClient) -> None:
    response = await ucd.request("DELETE", "/api/user/v1/identity", content=BROKEN_JSON)
    assert "content-type" not in response.request.headers
    assert response.json() == INVALID_JSON  # past the content-type check
    # A wrong content type is still wrong there.
    response = await ucd.request(
        "DELETE", "/api/user/v1/identity", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert response.json() == CONTENT_TYPE


def json_of_size(size: int) -> bytes:
    """A valid JSON object of exactly ``size`` bytes."""
    head, tail = b'{"table": "events", "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_exactly_5_000_000_bytes_is_accepted(ucd: httpx.AsyncClient) -> None:
    body = json_of_size(MAX_BODY_BYTES)
    assert len(body) == 5_000_000
    response = await ucd.post("/api/user/v1/upsert", content=body[:-1], headers=JSON)
    assert response.json() == INVALID_JSON  # 4,999,999 bytes, cut short: read and parsed
    response = await ucd.post("/api/user/v3/metadata/columns", content=body, headers=JSON)
    assert response.json() not in (TOO_BIG, INVALID_JSON, CONTENT_TYPE)


async def test_5_000_001_bytes_is_rejected_by_content_length(ucd: httpx.AsyncClient) -> None:
    body = json_of_size(MAX_BODY_BYTES + 1)
    response = await ucd.post("/api/user/v3/metadata/columns", content=body, headers=JSON)
    assert response.request.headers["content-length"] == "5000001"
    assert response.status_code == 400
    assert response.json() == TOO_BIG


async def chunks(total: int, size: int = 65_536) -> AsyncIterator[bytes]:
    body = json_of_size(total)
    for start in range(0, total, size):
        yield body[start : start + size]


async def test_chunked_body_up_to_the_limit_is_accepted(ucd: httpx.AsyncClient) -> None:
    response = await ucd.post(
        "/api/user/v3/metadata/columns", content=chunks(MAX_BODY_BYTES), headers=JSON
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.json() not in (TOO_BIG, INVALID_JSON, CONTENT_TYPE)


async def test_chunked_body_over_the_limit_is_rejected(ucd: httpx.AsyncClient) -> None:
    response = await ucd.post(
        "/api/user/v3/metadata/columns", content=chunks(MAX_BODY_BYTES + 1), headers=JSON
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 400
    assert response.json() == TOO_BIG


async def test_chunked_reading_stops_after_the_limit(ucd: httpx.AsyncClient) -> None:
    """An endless body is cut off: the server stops reading right after byte 5,000,001."""
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"pad": "'
        sent += 9
        while True:
            yield b"x" * 100_000
            sent += 100_000

    response = await ucd.post("/api/user/v1/upsert", content=endless(), headers=JSON)
    assert response.json() == TOO_BIG
    assert sent < MAX_BODY_BYTES + 100_000


async def test_size_is_checked_before_json(ucd: httpx.AsyncClient) -> None:
    response = await ucd.post("/api/user/v1/upsert", content=b"[" * 5_000_001, headers=JSON)
    assert response.json() == TOO_BIG


async def test_content_type_is_checked_before_size(ucd: httpx.AsyncClient) -> None:
    response = await ucd.post(
        "/api/user/v1/upsert", content=b"x" * 5_000_001, headers={"Content-Type": "text/plain"}
    )
    assert response.json() == CONTENT_TYPE


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   ", id="whitespace"),
        pytest.param(b"{", id="unterminated"),
        pytest.param(b'{"users": [1,]}', id="trailing-comma"),
        pytest.param(b"{'users': []}", id="single-quotes"),
        pytest.param(b'{"a": NaN}', id="nan"),
        pytest.param(b'{"a": Infinity}', id="infinity"),
        pytest.param(b'{"a": -Infinity}', id="minus-infinity"),
        pytest.param(b"[]", id="top-level-array"),
        pytest.param(b'[{"users": []}]', id="array-of-object"),
        pytest.param(b"1", id="number"),
        pytest.param(b'"users"', id="string"),
        pytest.param(b"true", id="boolean"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"a": "\xff\xfe"}', id="invalid-utf8"),
        pytest.param(b'{"a": "\xed\xa0\x80"}', id="utf8-encoded-surrogate"),
        pytest.param(b'{"a": 1} {"b": 2}', id="two-documents"),
    ],
)
async def test_invalid_json_is_rejected(ucd: httpx.AsyncClient, body: bytes) -> None:
    response = await ucd.post("/api/user/v1/upsert", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == INVALID_JSON
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("method", "path"), INSIDER_ENDPOINTS)
async def test_every_endpoint_with_a_body_runs_the_json_check(
    ucd: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await ucd.request(method, path, content=b"[]", headers=JSON)
    assert response.json() == INVALID_JSON


async def test_body_checks_follow_authentication(ucd_app: Starlette) -> None:
    async with make_client(ucd_app, {**AUTH, "X-REQUEST-TOKEN": "nope"}) as client:
        response = await client.post(
            "/api/user/v1/upsert", content=b"x" * 5_000_001, headers={"Content-Type": "text/xml"}
        )
    assert response.status_code == 403
    assert response.json() == ACCESS_DENIED
