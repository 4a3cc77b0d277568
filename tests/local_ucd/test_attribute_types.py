"""Declaring and listing custom attribute types: ``/api/local/v1/attributes`` (§5.6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import make_client

Upsert = Callable[..., Any]
PATH = "/api/local/v1/attributes"
TYPES = ("string", "number", "boolean", "date", "string_array", "number_array")


async def declare(ucd: httpx.AsyncClient, name: Any, type_name: Any) -> httpx.Response:
    return await ucd.post(PATH, json={"name": name, "type": type_name})


async def listed(ucd: httpx.AsyncClient) -> list[dict[str, str]]:
    response = await ucd.get(PATH)
    assert response.status_code == 200
    attributes: list[dict[str, str]] = response.json()["attributes"]
    return attributes


@pytest.mark.parametrize("type_name", TYPES)
async def test_declare_each_type(ucd: httpx.AsyncClient, type_name: str) -> None:
    response = await declare(ucd, "renewal", type_name)
    assert response.status_code == 200
    assert response.json() == {"name": "renewal", "type": type_name}
    assert await listed(ucd) == [{"name": "renewal", "type": type_name}]


async def test_declaring_the_same_type_again_is_a_no_op(ucd: httpx.AsyncClient) -> None:
    assert (await declare(ucd, "renewal", "date")).status_code == 200
    again = await declare(ucd, "renewal", "date")
    assert again.status_code == 200
    assert again.json() == {"name": "renewal", "type": "date"}
    assert await listed(ucd) == [{"name": "renewal", "type": "date"}]


NAME_ERROR = {"error": "name must be defined: bad request"}
TYPE_ERROR = {
    "error": "type must be one of string, number, boolean, date, string_array, number_array"
    ": bad request"
}

BAD_BODIES = [
    pytest.param({"type": "date"}, NAME_ERROR, id="name-absent"),
    pytest.param({"name": "", "type": "date"}, NAME_ERROR, id="name-empty"),
    pytest.param({"name": "n" * 129, "type": "date"}, NAME_ERROR, id="name-129"),
    pytest.param({"name": 5, "type": "date"}, NAME_ERROR, id="name-number"),
    pytest.param({"name": "x"}, TYPE_ERROR, id="type-absent"),
    pytest.param({"name": "x", "type": "array"}, TYPE_ERROR, id="type-array"),
    pytest.param({"name": "x", "type": "identifier"}, TYPE_ERROR, id="type-identifier"),
    pytest.param({"name": "x", "type": "Date"}, TYPE_ERROR, id="type-case"),
    pytest.param({"type": "nope"}, NAME_ERROR, id="name-checked-first"),
]


@pytest.mark.parametrize(("body", "error"), BAD_BODIES)
async def test_invalid_declarations(
    ucd: httpx.AsyncClient, body: dict[str, Any], error: dict[str, str]
) -> None:
    response = await ucd.post(PATH, json=body)
    assert response.status_code == 400
    assert response.json() == error
    assert await listed(ucd) == []


async def test_a_name_128_characters_long_is_accepted(ucd: httpx.AsyncClient) -> None:
    assert (await declare(ucd, "n" * 128, "number")).status_code == 200


CLASH = {"error": "attribute already exists with another type: bad request"}


async def test_another_type_than_declared_fails(ucd: httpx.AsyncClient) -> None:
    await declare(ucd, "renewal", "date")
    response = await declare(ucd, "renewal", "string")
    assert response.status_code == 400
    assert response.json() == CLASH


async def test_a_type_fixed_by_a_value_cannot_be_redeclared(
    ucd: httpx.AsyncClient, upsert: Upsert
) -> None:
    await upsert(
        {
            "identifiers": {"uuid": "u-1"},
            "attributes": {"custom": {"renewal": "2026-01-01T00:00:00Z"}},
        }
    )
    response = await declare(ucd, "renewal", "date")
    assert response.status_code == 400
    assert response.json() == CLASH
    assert (await declare(ucd, "renewal", "string")).status_code == 200


async def test_a_custom_identifier_cannot_be_declared(
    ucd: httpx.AsyncClient, upsert: Upsert
) -> None:
    await upsert({"identifiers": {"custom": {"crm_id": "c-1"}}, "attributes": {"age": 1}})
    for type_name in ("string", "date"):
        response = await declare(ucd, "crm_id", type_name)
        assert response.status_code == 400
        assert response.json() == CLASH


async def test_a_name_seen_only_with_an_empty_array_can_be_declared(
    ucd: httpx.AsyncClient, upsert: Upsert
) -> None:
    await upsert({"identifiers": {"uuid": "u-1"}, "attributes": {"custom": {"later": []}}})
    assert await listed(ucd) == []  # no type yet
    assert (await declare(ucd, "later", "number_array")).status_code == 200
    result = await upsert(
        {"identifiers": {"uuid": "u-1"}, "attributes": {"custom": {"later": ["x"]}}}
    )
    assert result["data"]["fail"]["errors"] == {
        "users.0.attributes.custom.later.type(number_array)": ['later must be number_array: ["x"]']
    }


async def test_a_declared_name_is_a_custom_attribute(
    ucd: httpx.AsyncClient, upsert: Upsert
) -> None:
    await declare(ucd, "renewal", "date")
    result = await upsert(
        {"identifiers": {"uuid": "u-1", "custom": {"renewal": "x"}}, "attributes": {"age": 1}}
    )
    assert result["data"]["fail"]["errors"] == {
        "users.0.identifiers.custom.*.type(identifier)": [
            "renewal is a custom attribute, not an identifier"
        ]
    }


async def test_list_is_sorted_by_name_with_identifiers(
    ucd: httpx.AsyncClient, upsert: Upsert
) -> None:
    await upsert(
        {
            "identifiers": {"custom": {"crm_id": "c-1"}},
            "attributes": {"custom": {"tier": "gold", "Zeta": 1, "tags": ["a"], "ok": True}},
        }
    )
    await declare(ucd, "ärger", "string")
    await declare(ucd, "birthday2", "date")
    assert await listed(ucd) == [
        {"name": "Zeta", "type": "number"},
        {"name": "birthday2", "type": "date"},
        {"name": "crm_id", "type": "identifier"},
        {"name": "ok", "type": "boolean"},
        {"name": "tags", "type": "string_array"},
        {"name": "tier", "type": "string"},
        {"name": "ärger", "type": "string"},
    ]


async def test_declarations_are_per_partner(
    ucd: httpx.AsyncClient, other_ucd: httpx.AsyncClient
) -> None:
    await declare(ucd, "renewal", "date")
    assert (await declare(other_ucd, "renewal", "number")).status_code == 200
    assert await listed(ucd) == [{"name": "renewal", "type": "date"}]
    assert await listed(other_ucd) == [{"name": "renewal", "type": "number"}]


async def test_the_endpoints_need_partner_headers(ucd_app: Any) -> None:
    async with make_client(ucd_app, headers={}) as anonymous:
        response = await anonymous.get(PATH)
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Empty Partner"}
