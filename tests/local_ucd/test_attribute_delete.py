"""E4 — delete user attributes (§3.4): envelope, per-user checks, whole/partial semantics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

PATH = "/api/user/v1/attribute/delete"
ADA = {"email": "ada@example.com"}
EMPTY_ENVELOPE: dict[str, Any] = {"data": {"successful": {}, "fail": {}}}
ONE_OK = {"data": {"successful": {"count": 1}, "fail": {}}}
IDENTIFIER_NOT_HERE = "identifier attributes cannot be deleted here; use the identity API"

Upsert = Callable[..., Any]


async def delete(ucd: httpx.AsyncClient, *users: Any) -> dict[str, Any]:
    response = await ucd.post(PATH, json={"users": list(users)})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def attributes(ucd: httpx.AsyncClient, identifiers: dict[str, Any]) -> dict[str, Any]:
    response = await ucd.post(
        "/api/user/v1/profile", json={"identifiers": identifiers, "attributes": "*"}
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["attributes"]
    found.pop("iid")
    return found


def failures(errors: dict[str, list[str]]) -> dict[str, Any]:
    return {"data": {"successful": {}, "fail": {"count": 1, "errors": errors}}}


@pytest.fixture
async def ada(upsert: Upsert) -> None:
    """Ada with scalars, a default array, custom attributes and a custom identifier."""
    await upsert(
        {
            "identifiers": {**ADA, "phone_number": "+905551112233", "custom": {"crm_id": "c-9"}},
            "attributes": {
                "name": "Ada",
                "surname": "Lovelace",
                "email_optin": True,
                "gdpr_optin": False,
                "locale": "en_GB",
                "static_segment_id": [1, 2, 3],
                "custom": {
                    "tier": "gold",
                    "favorite_color": ["green", "blue"],
                    "score": [1, 2.5, 3],
                },
            },
        }
    )


async def test_spec_example_deletes_whole_and_partial_values(
    ada: None, ucd: httpx.AsyncClient
) -> None:
    result = await delete(
        ucd,
        {
            "identifiers": ADA,
            "whole": ["name", "email_optin"],
            "partial": {"list_id": [1, 2]},
            "custom": {"whole": ["tier"], "partial": {"favorite_color": ["green"]}},
        },
    )
    assert result == ONE_OK
    assert await attributes(ucd, ADA) == {
        "email": "ada@example.com",
        "phone_number": "+905551112233",
        "c_crm_id": "c-9",
        "surname": "Lovelace",
        "gdpr": False,
        "lo": "en_GB",
        "static_segment_id": [3],
        "c_favorite_color": ["blue"],
        "c_score": [1, 2.5, 3],
    }


@pytest.mark.parametrize(
    ("body", "text"),
    [
        pytest.param({}, "users must be defined: bad request", id="absent"),
        pytest.param({"users": None}, "users must be defined: bad request", id="null"),
        pytest.param({"users": {"a": 1}}, "users must be defined: bad request", id="object"),
        pytest.param(
            {"users": [{}] * 1001},
            "users must not contain more than 1000 items: bad request",
            id="too-many",
        ),
    ],
)
async def test_request_level_errors(
    ucd: httpx.AsyncClient, body: dict[str, Any], text: str
) -> None:
    response = await ucd.post(PATH, json=body)
    assert response.status_code == 400
    assert response.json() == {"error": text}


async def test_empty_users_is_an_empty_envelope(ucd: httpx.AsyncClient) -> None:
    assert await delete(ucd) == EMPTY_ENVELOPE


async def test_thousand_users_are_accepted(ada: None, ucd: httpx.AsyncClient) -> None:
    result = await delete(ucd, *([{"identifiers": ADA, "whole": ["name"]}] * 1000))
    assert result == {"data": {"successful": {"count": 1000}, "fail": {}}}


async def test_every_shape_failure_of_a_user_is_reported(ucd: httpx.AsyncClient) -> None:
    result = await delete(
        ucd,
        {
            "identifiers": {"email": "sample", "phone_number": 5},
            "whole": "name",
            "partial": {"list_id": 3, "ok": [1]},
            "custom": {"whole": [1], "partial": {"a": "x"}},
        },
    )
    assert result == failures(
        {
            "users.0.identifiers.*.regexp(^.+@.+\\..+$)": ["not a valid email address: sample"],
            "users.0.identifiers.*.type(string)": ["phone_number must be string: 5"],
            "users.0.whole.type(array)": ["whole must be array: name"],
            "users.0.partial.list_id.type(array)": ["list_id must be array: 3"],
            "users.0.custom.whole.type(array)": ["whole must be array: [1]"],
            "users.0.custom.partial.a.type(array)": ["a must be array: x"],
        }
    )


@pytest.mark.parametrize(
    ("user", "errors"),
    [
        pytest.param(7, {"users.0.type(object)": ["user must be object: 7"]}, id="not-object"),
        pytest.param(
            {"whole": ["name"]},
            {
                "users.0.identifiers.required": [
                    "either insider_id or idenifiers must be specified"
                ],
                "users.0.insider_id.required": [
                    "either insider_id or idenifiers must be specified"
                ],
            },
            id="no-identity",
        ),
        pytest.param(
            {"identifiers": ADA, "partial": ["x"]},
            {"users.0.partial.type(object)": ['partial must be object: ["x"]']},
            id="partial-not-object",
        ),
        pytest.param(
            {"identifiers": ADA, "custom": "tier"},
            {"users.0.custom.type(object)": ["custom must be object: tier"]},
            id="custom-not-object",
        ),
        pytest.param(
            {"identifiers": ADA, "custom": {"partial": 1}},
            {"users.0.custom.partial.type(object)": ["partial must be object: 1"]},
            id="custom-partial-not-object",
        ),
        pytest.param(
            {"identifiers": ADA, "whole": [], "partial": {}, "custom": {"whole": []}},
            {
                "users.0.whole.required": [
                    "at least one of whole, partial, custom.whole or custom.partial"
                    " must be specified"
                ]
            },
            id="nothing-to-delete",
        ),
    ],
)
async def test_user_shape_failures(
    ada: None, ucd: httpx.AsyncClient, user: Any, errors: dict[str, list[str]]
) -> None:
    assert await delete(ucd, user) == failures(errors)


async def test_unknown_user_by_identifiers_or_insider_id(ucd: httpx.AsyncClient) -> None:
    result = await delete(
        ucd,
        {"identifiers": {"email": "nobody@example.com"}, "whole": ["name"]},
        {"insider_id": "3b9a6c1e-8f3d-4c1a-9e57-2d8f0b6a4c11", "whole": ["name"]},
    )
    assert result == {
        "data": {
            "successful": {},
            "fail": {
                "count": 2,
                "errors": {
                    "users.0.identifiers.exists": ["no such user for these identifiers"],
                    "users.1.identifiers.exists": ["no such user for these identifiers"],
                },
            },
        }
    }


async def test_identifiers_cannot_be_deleted_and_the_user_changes_nothing(
    ada: None, ucd: httpx.AsyncClient
) -> None:
    before = await attributes(ucd, ADA)
    result = await delete(
        ucd,
        {
            "identifiers": ADA,
            "whole": ["name", "email", "uuid"],  # no uuid held: a no-op, not an error
            "partial": {"phone_number": ["+905551112233"], "name": ["Ada"]},
            "custom": {"whole": ["crm_id", "tier"], "partial": {"tier": ["gold"]}},
        },
    )
    assert result == failures(
        {
            "users.0.whole.identifier": [IDENTIFIER_NOT_HERE],
            "users.0.custom.whole.identifier": [IDENTIFIER_NOT_HERE],
            "users.0.partial.phone_number.type(array)": ["phone_number is not an array attribute"],
            "users.0.partial.name.type(array)": ["name is not an array attribute"],
            "users.0.custom.partial.tier.type(array)": ["tier is not an array attribute"],
        }
    )
    assert await attributes(ucd, ADA) == before


async def test_partial_on_a_custom_identifier_is_not_an_array(
    ada: None, ucd: httpx.AsyncClient
) -> None:
    result = await delete(ucd, {"identifiers": ADA, "custom": {"partial": {"crm_id": ["c-9"]}}})
    assert result == failures(
        {"users.0.custom.partial.crm_id.type(array)": ["crm_id is not an array attribute"]}
    )


async def test_aliases_and_gdpr_name_default_attributes(ada: None, ucd: httpx.AsyncClient) -> None:
    result = await delete(
        ucd, {"identifiers": ADA, "whole": ["locale", "gdpr"], "partial": {"list_id": [2]}}
    )
    assert result == ONE_OK
    found = await attributes(ucd, ADA)
    assert "lo" not in found
    assert "gdpr" not in found
    assert found["static_segment_id"] == [1, 3]


async def test_numbers_are_compared_by_value_and_emptied_arrays_removed(
    ada: None, ucd: httpx.AsyncClient
) -> None:
    result = await delete(
        ucd,
        {
            "identifiers": ADA,
            "partial": {"static_segment_id": [1.0, 2, 3.0, 99]},
            "custom": {"partial": {"score": [2.50, 7], "favorite_color": ["blue", 1]}},
        },
    )
    assert result == ONE_OK
    found = await attributes(ucd, ADA)
    assert "static_segment_id" not in found
    assert found["c_score"] == [1, 3]
    assert found["c_favorite_color"] == ["green"]


async def test_absent_and_unknown_names_are_successful_no_ops(
    ada: None, ucd: httpx.AsyncClient
) -> None:
    before = await attributes(ucd, ADA)
    result = await delete(
        ucd,
        {
            "identifiers": ADA,
            "whole": ["city", "no_such_attribute", "c_tier"],
            "partial": {"nothing": [1], "static_segment_id": [42]},
            "custom": {"whole": ["c_tier", "never_seen"], "partial": {"unknown": ["x"]}},
        },
    )
    assert result == ONE_OK
    assert await attributes(ucd, ADA) == before  # c_tier is a custom name, taken literally


async def test_insider_id_finds_the_user(ada: None, ucd: httpx.AsyncClient) -> None:
    response = await ucd.post(
        "/api/user/v1/profile", json={"identifiers": ADA, "attributes": ["name"]}
    )
    iid = response.json()["attributes"]["iid"]
    assert await delete(ucd, {"insider_id": iid, "whole": ["name"]}) == ONE_OK
    assert "name" not in await attributes(ucd, ADA)


async def test_a_failing_user_leaves_the_others_applied(
    ada: None, upsert: Upsert, ucd: httpx.AsyncClient
) -> None:
    await upsert({"identifiers": {"email": "bob@example.com"}, "attributes": {"name": "Bob"}})
    result = await delete(
        ucd,
        {"identifiers": ADA, "whole": ["name", "email"]},
        {"identifiers": {"email": "bob@example.com"}, "whole": ["name"]},
        {"identifiers": ADA, "whole": ["surname"]},
    )
    assert result == {
        "data": {
            "successful": {"count": 2},
            "fail": {"count": 1, "errors": {"users.0.whole.identifier": [IDENTIFIER_NOT_HERE]}},
        }
    }
    assert "name" not in await attributes(ucd, {"email": "bob@example.com"})
    found = await attributes(ucd, ADA)
    assert found["name"] == "Ada"
    assert "surname" not in found


async def test_later_users_see_earlier_deletions(ada: None, ucd: httpx.AsyncClient) -> None:
    result = await delete(
        ucd,
        {"identifiers": ADA, "partial": {"static_segment_id": [1]}},
        {"identifiers": ADA, "partial": {"static_segment_id": [2, 3]}},
    )
    assert result == {"data": {"successful": {"count": 2}, "fail": {}}}
    assert "static_segment_id" not in await attributes(ucd, ADA)


async def test_custom_attribute_type_stays_in_the_catalogue(
    ada: None, upsert: Upsert, ucd: httpx.AsyncClient
) -> None:
    assert await delete(ucd, {"identifiers": ADA, "custom": {"whole": ["tier"]}}) == ONE_OK
    result = await upsert({"identifiers": ADA, "attributes": {"custom": {"tier": 5}}})
    assert result["data"]["fail"]["errors"] == {
        "users.0.attributes.custom.tier.type(string)": ["tier must be string: 5"]
    }
