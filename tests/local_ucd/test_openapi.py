"""``GET /openapi.json`` (§5.3): a valid OpenAPI 3.1 document of every endpoint."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from gateway.local_ucd.app import ENDPOINTS
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.http import ACCESS_DENIED, NO_SUCH_USER, TOO_MANY_REQUESTS, UNKNOWN_ERROR
from gateway.local_ucd.openapi import document as openapi
from gateway.ucd.demo_data import demo_users
from tests.local_ucd.conftest import serve

LOCAL_GETS = {("get", "/healthz"), ("get", "/openapi.json"), ("get", "/exports/{partner}/p/{file}")}


@pytest.fixture
async def document(ucd: httpx.AsyncClient) -> dict[str, Any]:
    response = await ucd.get("/openapi.json", headers={"X-PARTNER-NAME": ""})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` refs resolve in ``document``."""
    return Draft202012Validator({**schema, "components": document["components"]})


def request_schema(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path][method]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


def request_example(document: dict[str, Any], method: str, path: str) -> Any:
    operation = document["paths"][path][method]
    return operation["requestBody"]["content"]["application/json"]["example"]


def response_schema(
    document: dict[str, Any], method: str, path: str, status: str
) -> dict[str, Any]:
    response = document["paths"][path][method]["responses"][status]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


async def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_the_validator_rejects_a_broken_document() -> None:
    """The validation above can fail: an apiKey scheme must sit in a header, query or cookie."""
    broken = openapi.build_document("http://x")
    broken["components"]["securitySchemes"]["PartnerName"]["in"] = "body"
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


async def test_every_route_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "patch", "delete", "put"}
    }
    served = {(e.method.lower(), e.path) for e in ENDPOINTS} | LOCAL_GETS
    assert documented == served


async def test_servers_is_the_public_base_url(document: dict[str, Any]) -> None:
    assert document["servers"] == [{"url": "http://local-ucd.test"}]


async def test_servers_defaults_to_host_and_port(tmp_path: Path) -> None:
    config = LocalUcdConfig(data_dir=tmp_path / "ucd", host="127.0.0.1", port=9123)
    async with serve(config, {}) as (_, client):
        body = (await client.get("/openapi.json")).json()
    assert body["servers"] == [{"url": "http://127.0.0.1:9123"}]


async def test_document_is_built_once_and_cached(ucd_config: LocalUcdConfig) -> None:
    config = replace(ucd_config, public_base_url="http://cache-test.example")
    openapi._document_bytes.cache_clear()
    async with serve(config, {}) as (_, client):
        first = await client.get("/openapi.json")
        second = await client.get("/openapi.json")
    assert first.content == second.content
    info = openapi._document_bytes.cache_info()
    assert (info.misses, info.hits) == (1, 1)


async def test_partner_headers_are_api_key_security_schemes(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"] == {
        "PartnerName": {"type": "apiKey", "in": "header", "name": "X-PARTNER-NAME"},
        "RequestToken": {"type": "apiKey", "in": "header", "name": "X-REQUEST-TOKEN"},
    }
    expected: list[dict[str, list[str]]]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            secured = path.startswith("/api/")
            expected = [{"PartnerName": [], "RequestToken": []}] if secured else []
            assert operation["security"] == expected, (method, path)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_api_operations_document_the_common_answers(
    document: dict[str, Any], endpoint: Any
) -> None:
    operation = document["paths"][endpoint.path][endpoint.method.lower()]
    statuses = set(operation["responses"])
    assert {"200", "400", "403", "500"} <= statuses
    # 429: rate pools and fault injection reach every §3 endpoint, never a local one.
    assert ("429" in statuses) == (endpoint.fault_key is not None)
    user_lookups = {"profile", "identity_update", "identity_delete", "anonymize_contact"}
    user_lookups |= {"anonymize_user", "delete_user"}
    assert ("404" in statuses) == (endpoint.fault_key in user_lookups)
    assert ("requestBody" in operation) == endpoint.has_body


async def test_429_documents_retry_after(document: dict[str, Any]) -> None:
    too_many = document["components"]["responses"]["TooManyRequests"]
    assert too_many["headers"]["Retry-After"]["required"] is True
    assert too_many["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        ("403", ACCESS_DENIED),
        ("404", NO_SUCH_USER),
        ("429", TOO_MANY_REQUESTS),
        ("500", UNKNOWN_ERROR),
        ("400", {"success": False, "message": "Empty Partner"}),
        ("400", {"success": False, "message": "Request data is not in valid JSON format."}),
        ("400", {"error": "content type must be application/json"}),
        ("400", {"error": "users must be defined: bad request"}),
    ],
)
async def test_error_bodies_fit_their_schemas(
    document: dict[str, Any], status: str, body: dict[str, Any]
) -> None:
    schema = response_schema(document, "post", "/api/user/v1/profile", status)
    assert schema_validator(document, schema).is_valid(body)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        ("403", {"success": False, "message": "Authentication Failed"}),
        ("404", {"error": "not found"}),
        ("429", {"error": "too many requests"}),
        ("500", {"success": True, "message": UNKNOWN_ERROR["message"]}),
        ("400", {"error": "users must be defined"}),
        ("400", {"success": False, "message": "Empty partner"}),
    ],
)
async def test_wrong_error_texts_break_the_schema(
    document: dict[str, Any], status: str, body: dict[str, Any]
) -> None:
    schema = response_schema(document, "post", "/api/user/v1/profile", status)
    assert not schema_validator(document, schema).is_valid(body)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.has_body], ids=lambda e: e.path)
async def test_every_request_body_has_an_example_that_fits_its_schema(
    document: dict[str, Any], endpoint: Any
) -> None:
    method = endpoint.method.lower()
    media = document["paths"][endpoint.path][method]["requestBody"]["content"]["application/json"]
    validator = schema_validator(document, media["schema"])
    assert list(validator.iter_errors(media["example"])) == []


async def test_upsert_example_is_the_contracts(document: dict[str, Any]) -> None:
    """§3.1.1's sample, verbatim but for the error callback (examples are sent by tools)."""
    example = request_example(document, "post", "/api/user/v1/upsert")
    ada = example["users"][0]
    assert ada["identifiers"] == {"email": "ada@example.com", "custom": {"crm_id": "c-9"}}
    assert ada["events"][0]["event_params"]["unit_sale_price"] == 890.9
    assert "error_callback_endpoint" not in example


async def test_examples_run_against_the_local_ucd(
    document: dict[str, Any], ucd: httpx.AsyncClient
) -> None:
    """The upsert example creates Ada; the profile example then reads her back."""
    upserted = await ucd.post(
        "/api/user/v1/upsert", json=request_example(document, "post", "/api/user/v1/upsert")
    )
    assert upserted.json()["data"]["successful"] == {"count": 1}
    profile = await ucd.post(
        "/api/user/v1/profile", json=request_example(document, "post", "/api/user/v1/profile")
    )
    assert profile.status_code == 200
    answer = profile.json()
    assert answer["attributes"]["name"] == "Ada"
    validator = schema_validator(
        document, response_schema(document, "post", "/api/user/v1/profile", "200")
    )
    assert list(validator.iter_errors(answer)) == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("post", "/api/user/v1/upsert", {}, id="upsert-no-users"),
        pytest.param("post", "/api/user/v1/upsert", {"users": [{}] * 1001}, id="upsert-1001-users"),
        pytest.param(
            "patch",
            "/api/user/v1/identity",
            {"old_identifier": {"email": "a@b.co", "uuid": "u"}, "new_identifier": {"uuid": "v"}},
            id="identity-two-entries",
        ),
        pytest.param(
            "post", "/api/user/v3/metadata/columns", {"table": "users"}, id="metadata-table"
        ),
        pytest.param("post", "/api/raw/v1/export", {"segment": {}}, id="export-incomplete"),
    ],
)
async def test_requests_the_contract_rejects_break_the_request_schemas(
    document: dict[str, Any], method: str, path: str, body: dict[str, Any]
) -> None:
    validator = schema_validator(document, request_schema(document, method, path))
    assert not validator.is_valid(body)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param(
            "post",
            "/api/user/v1/upsert",
            {"data": {"successful": {"count": 2}, "fail": {}}},
            id="upsert",
        ),
        pytest.param(
            "post",
            "/api/user/v1/upsert",
            {
                "data": {
                    "successful": {},
                    "fail": {
                        "count": 1,
                        "errors": {"users.0.insider_id.required": ["either insider_id or …"]},
                    },
                }
            },
            id="upsert-fail",
        ),
        pytest.param(
            "post",
            "/api/user/v1/profile",
            {
                "attributes": {"iid": "3b9a", "email": "ada@example.com", "gdpr": True},
                "events": {
                    "purchase": [
                        {
                            "created_date": "2025-01-10T21:35:20Z",
                            "source": "api",
                            "product_id": "ABC21000",
                        }
                    ],
                    "email_click": [],
                },
                "quota": {"cost": 3, "used": 3, "total": 1000},
            },
            id="profile",
        ),
        pytest.param("post", "/api/raw/v1/export", {}, id="export"),
        pytest.param(
            "post",
            "/api/user/v3/metadata/columns",
            [
                {"key": "iid", "display_name": "Profile ID", "type": "string"},
                {"key": "c_favorite_color", "display_name": "favorite_color", "type": "array"},
                {
                    "key": "purchase",
                    "display_name": "purchase",
                    "params": [{"key": "currency", "display_name": "currency"}],
                },
            ],
            id="metadata",
        ),
    ],
)
async def test_the_contracts_answers_fit_the_200_schemas(
    document: dict[str, Any], method: str, path: str, body: Any
) -> None:
    validator = schema_validator(document, response_schema(document, method, path, "200"))
    assert list(validator.iter_errors(body)) == []


async def test_envelope_never_shows_a_zero_count(document: dict[str, Any]) -> None:
    """§3.1.5: an empty side is {} — never {"count": 0}."""
    validator = schema_validator(
        document, response_schema(document, "post", "/api/user/v1/upsert", "200")
    )
    assert not validator.is_valid({"data": {"successful": {"count": 0}, "fail": {}}})


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"attributes": {"iid": "i", "name": 7}, "events": {}}, id="name-not-a-string"),
        pytest.param({"attributes": {"iid": "i", "age": "7"}, "events": {}}, id="age-not-a-number"),
        pytest.param(
            {
                "attributes": {"iid": "i"},
                "events": {
                    "purchase": [
                        {"created_date": "2025-01-10T21:35:20Z", "source": "api", "quantity": "2"}
                    ]
                },
            },
            id="quantity-not-an-integer",
        ),
        pytest.param(
            {"attributes": {"iid": "i"}, "events": {"custom_event": [{"source": "api"}]}},
            id="custom-event-without-its-date",
        ),
    ],
)
async def test_the_profile_answer_types_attributes_and_event_parameters(
    document: dict[str, Any], answer: dict[str, Any]
) -> None:
    """Typed, so a client generated from the document (GraphQL Mesh) can select ``name``
    and ``email``, not only ``iid``; custom names stay open."""
    schema = response_schema(document, "post", "/api/user/v1/profile", "200")
    attributes = schema["properties"]["attributes"]["properties"]
    assert attributes["name"]["type"] == attributes["email"]["type"] == "string"
    assert set(schema["properties"]["events"]["properties"]) == {"cart_page_view", "purchase"}
    validator = schema_validator(document, schema)
    assert not validator.is_valid(answer)
    assert validator.is_valid(
        {"attributes": {"iid": "i", "name": "Ada", "c_tier": ["x"]}, "events": {"x": []}}
    )


async def test_every_demo_users_whole_profile_fits_the_answer_schema(
    document: dict[str, Any], ucd: httpx.AsyncClient
) -> None:
    users = [user.to_wire() for user in demo_users(20, seed=7)]
    upserted = await ucd.post("/api/user/v1/upsert", json={"users": users})
    assert upserted.json()["data"]["successful"] == {"count": 20}
    validator = schema_validator(
        document, response_schema(document, "post", "/api/user/v1/profile", "200")
    )
    events = [e for u in users for e in u.get("events", ())]
    names = sorted({e["event_name"] for e in events})
    params = sorted(
        {k for e in events for k in e.get("event_params", {}) if k != "custom"}
        | {f"c_{k}" for e in events for k in e.get("event_params", {}).get("custom", {})}
    )
    now = int(time.time())
    seen: set[str] = set()
    for user in users:
        answer = await ucd.post(
            "/api/user/v1/profile",
            json={
                "identifiers": {"uuid": user["identifiers"]["uuid"]},
                "attributes": ["*"],
                "events": {
                    "start_date": now - 100 * 86400,
                    "end_date": now,
                    "wanted": [{"event_name": n, "params": params} for n in names],
                },
            },
        )
        assert answer.status_code == 200, answer.text
        assert list(validator.iter_errors(answer.json())) == []
        seen.update(k for lists in answer.json()["events"].values() for e in lists for k in e)
    assert {"product_id", "unit_sale_price", "quantity"} <= seen  # typed ones were checked
