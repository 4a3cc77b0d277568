"""E5/E6 — update and delete identifiers (§3.5, §3.6); rate pools of E4–E9 (§2.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from tests.local_ucd.conftest import make_client

PATH = "/api/user/v1/identity"
ADA = {"email": "ada@example.com"}
NO_SUCH_USER = {"error": "no such user for these identifiers: no data"}
ONE_PAIR = "there must be exactly 1 entry for both new and old identifiers: bad request"
ONE = "there must be exactly 1 identifier: bad request"
NO_VALID = "no valid identifier: bad request"

Upsert = Callable[..., Any]


@pytest.fixture
async def ada(upsert: Upsert) -> None:
    await upsert(
        {
            "identifiers": {**ADA, "phone_number": "+905551112233", "custom": {"crm_id": "c-9"}},
            "attributes": {"name": "Ada", "custom": {"tier": "gold"}},
            "events": [{"event_name": "login", "timestamp": "2099-01-01T00:00:00Z"}],
        },
        {"identifiers": {"email": "bob@example.com"}, "attributes": {"name": "Bob"}},
    )


async def patch(ucd: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await ucd.patch(PATH, json=body)


async def delete(ucd: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await ucd.request("DELETE", PATH, json=body)


async def profile(ucd: httpx.AsyncClient, identifiers: dict[str, Any]) -> dict[str, Any] | None:
    response = await ucd.post(
        "/api/user/v1/profile",
        json={
            "identifiers": identifiers,
            "attributes": "*",
            "events": {
                "start_date": 0,
                "end_date": 5_000_000_000,
                "wanted": [{"event_name": "login", "params": []}],
            },
        },
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


# -- E5 ---------------------------------------------------------------------------------


async def test_update_keeps_the_profile_and_frees_the_old_value(
    ada: None, ucd: httpx.AsyncClient, upsert: Upsert
) -> None:
    before = await profile(ucd, ADA)
    assert before is not None
    response = await patch(
        ucd,
        {
            "old_identifier": {"email": " ADA@example.com"},
            "new_identifier": {"email": "Ada@Lovelace.org"},
        },
    )
    assert (response.status_code, response.json()) == (200, {})
    after = await profile(ucd, {"email": "ada@lovelace.org"})
    assert after is not None
    assert after["attributes"]["iid"] == before["attributes"]["iid"]
    assert after["attributes"]["email"] == "ada@lovelace.org"
    assert after["attributes"]["name"] == "Ada"
    assert len(after["events"]["login"]) == 1
    assert await profile(ucd, ADA) is None
    # The old value may now be attached to any profile (here: a new one).
    await upsert({"identifiers": ADA, "attributes": {"name": "New"}})
    again = await profile(ucd, ADA)
    assert again is not None
    assert again["attributes"]["iid"] != before["attributes"]["iid"]


async def test_update_custom_identifier(ada: None, ucd: httpx.AsyncClient) -> None:
    response = await patch(
        ucd,
        {
            "old_identifier": {"custom": {"crm_id": "c-9"}},
            "new_identifier": {"custom": {"crm_id": "c-10"}},
        },
    )
    assert (response.status_code, response.json()) == (200, {})
    found = await profile(ucd, {"custom": {"crm_id": "c-10"}})
    assert found is not None
    assert found["attributes"]["c_crm_id"] == "c-10"
    assert await profile(ucd, {"custom": {"crm_id": "c-9"}}) is None


@pytest.mark.parametrize(
    ("body", "text"),
    [
        pytest.param({}, ONE_PAIR, id="both-absent"),
        pytest.param({"old_identifier": ADA}, ONE_PAIR, id="new-absent"),
        pytest.param({"old_identifier": "x", "new_identifier": ADA}, ONE_PAIR, id="not-object"),
        pytest.param({"old_identifier": {}, "new_identifier": ADA}, ONE_PAIR, id="empty"),
        pytest.param(
            {"old_identifier": {**ADA, "uuid": "u"}, "new_identifier": ADA}, ONE_PAIR, id="two-keys"
        ),
        pytest.param(
            {
                "old_identifier": {"custom": {"a": "1", "b": "2"}},
                "new_identifier": {"custom": {"a": "3"}},
            },
            ONE_PAIR,
            id="two-custom-names",
        ),
        pytest.param(
            {"old_identifier": {"custom": {}}, "new_identifier": ADA}, ONE_PAIR, id="empty-custom"
        ),
        # Check 2 runs on both sides before check 3 (type) and check 4 (format).
        pytest.param(
            {"old_identifier": {"em": "a@b.co"}, "new_identifier": ADA}, NO_VALID, id="unknown-key"
        ),
        pytest.param(
            {"old_identifier": {"email": "x"}, "new_identifier": {"uuid": 5}}, NO_VALID, id="number"
        ),
        pytest.param(
            {"old_identifier": {"email": "x"}, "new_identifier": {"email": None}},
            NO_VALID,
            id="null",
        ),
        pytest.param(
            {"old_identifier": {"email": " Anonymous "}, "new_identifier": ADA},
            NO_VALID,
            id="blocked",
        ),
        pytest.param(
            {
                "old_identifier": {"custom": {"crm_id": "null"}},
                "new_identifier": {"custom": {"crm_id": "x"}},
            },
            NO_VALID,
            id="blocked-custom",
        ),
        pytest.param(
            {"old_identifier": {"custom": "x"}, "new_identifier": ADA},
            NO_VALID,
            id="custom-not-object",
        ),
        pytest.param(
            {"old_identifier": {"custom": {"": "x"}}, "new_identifier": {"custom": {"": "y"}}},
            NO_VALID,
            id="empty-custom-name",
        ),
        pytest.param(
            {"old_identifier": {"email": "x"}, "new_identifier": {"phone_number": "y"}},
            "old and new identifiers must be of the same type: bad request",
            id="types-differ",
        ),
        pytest.param(
            {"old_identifier": {"custom": {"a": "v"}}, "new_identifier": {"custom": {"b": "v"}}},
            "old and new identifiers must be of the same type: bad request",
            id="custom-names-differ",
        ),
        pytest.param(
            {"old_identifier": {"phone_number": "12345"}, "new_identifier": {"phone_number": "+9"}},
            "user has an invalid phone number: 12345: bad request",
            id="old-phone-format",
        ),
        pytest.param(
            {"old_identifier": ADA, "new_identifier": {"email": "sample"}},
            "not a valid email address: sample: bad request",
            id="new-email-format",
        ),
        pytest.param(
            {"old_identifier": ADA, "new_identifier": {"email": " ADA@EXAMPLE.COM "}},
            "identifier values are the same: bad request",
            id="same-after-normalisation",
        ),
        pytest.param(
            {"old_identifier": ADA, "new_identifier": {"email": "bob@example.com"}},
            "new identifier already has a user assigned to it: bad request",
            id="taken",
        ),
    ],
)
async def test_update_checks(ada: None, ucd: httpx.AsyncClient, body: Any, text: str) -> None:
    response = await patch(ucd, body)
    assert response.status_code == 400
    assert response.json() == {"error": text}


async def test_update_custom_attribute_name_is_no_valid_identifier(
    ada: None, ucd: httpx.AsyncClient
) -> None:
    response = await patch(
        ucd,
        {
            "old_identifier": {"custom": {"tier": "gold"}},
            "new_identifier": {"custom": {"tier": "x"}},
        },
    )
    assert (response.status_code, response.json()) == (400, {"error": NO_VALID})


async def test_update_unknown_old_value_is_404(ada: None, ucd: httpx.AsyncClient) -> None:
    response = await patch(
        ucd,
        {"old_identifier": {"uuid": "nobody"}, "new_identifier": {"uuid": "someone"}},
    )
    assert (response.status_code, response.json()) == (404, NO_SUCH_USER)


async def test_update_never_merges(ada: None, ucd: httpx.AsyncClient) -> None:
    """The taken-value check keeps Bob and Ada apart; nothing changed on either."""
    response = await patch(
        ucd, {"old_identifier": {"email": "bob@example.com"}, "new_identifier": ADA}
    )
    assert response.status_code == 400
    bob = await profile(ucd, {"email": "bob@example.com"})
    ada_profile = await profile(ucd, ADA)
    assert bob is not None
    assert ada_profile is not None
    assert bob["attributes"]["iid"] != ada_profile["attributes"]["iid"]


# -- E6 ---------------------------------------------------------------------------------


async def test_delete_removes_the_identifier_and_its_view(
    ada: None, ucd: httpx.AsyncClient
) -> None:
    response = await delete(ucd, {"identifiers": {"phone_number": "+905551112233"}})
    assert (response.status_code, response.json()) == (200, {})
    found = await profile(ucd, ADA)
    assert found is not None
    assert "phone_number" not in found["attributes"]
    assert found["attributes"]["name"] == "Ada"
    assert await profile(ucd, {"phone_number": "+905551112233"}) is None


async def test_delete_without_content_type(ada: None, ucd: httpx.AsyncClient) -> None:
    response = await ucd.request(
        "DELETE", PATH, content=b'{"identifiers": {"custom": {"crm_id": "c-9"}}}'
    )
    assert (response.status_code, response.json()) == (200, {})
    found = await profile(ucd, ADA)
    assert found is not None
    assert "c_crm_id" not in found["attributes"]


async def test_delete_the_sole_identifier_is_refused(ada: None, ucd: httpx.AsyncClient) -> None:
    response = await delete(ucd, {"identifiers": {"email": "bob@example.com"}})
    assert response.status_code == 400
    assert response.json() == {
        "error": "you cannot delete the sole identifier specified for a user: bad request"
    }
    assert await profile(ucd, {"email": "bob@example.com"}) is not None


async def test_delete_down_to_one_identifier(ada: None, ucd: httpx.AsyncClient) -> None:
    for body in ({"phone_number": "+905551112233"}, {"custom": {"crm_id": "c-9"}}):
        assert (await delete(ucd, {"identifiers": body})).status_code == 200
    response = await delete(ucd, {"identifiers": {"email": " Ada@Example.com"}})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        pytest.param({}, 400, {"error": ONE}, id="absent"),
        pytest.param({"identifiers": ["x"]}, 400, {"error": ONE}, id="not-object"),
        pytest.param({"identifiers": {}}, 400, {"error": ONE}, id="empty"),
        pytest.param(
            {"identifiers": {"email": "a@b.co", "uuid": "u"}}, 400, {"error": ONE}, id="two"
        ),
        pytest.param({"identifiers": {"custom": {}}}, 400, {"error": ONE}, id="empty-custom"),
        pytest.param({"identifiers": {"iid": "x"}}, 400, {"error": NO_VALID}, id="unknown-key"),
        pytest.param({"identifiers": {"uuid": 1}}, 400, {"error": NO_VALID}, id="not-string"),
        pytest.param(
            {"identifiers": {"uuid": "undefined"}}, 400, {"error": NO_VALID}, id="blocked"
        ),
        pytest.param(
            {"identifiers": {"custom": {"tier": "gold"}}}, 400, {"error": NO_VALID}, id="attribute"
        ),
        pytest.param(
            {"identifiers": {"phone_number": "905551112233"}},
            400,
            {"error": "user has an invalid phone number: 905551112233: bad request"},
            id="phone-format",
        ),
        pytest.param({"identifiers": {"uuid": "nobody"}}, 404, NO_SUCH_USER, id="unknown"),
    ],
)
async def test_delete_checks(
    ada: None, ucd: httpx.AsyncClient, body: Any, status: int, answer: Any
) -> None:
    response = await delete(ucd, body)
    assert (response.status_code, response.json()) == (status, answer)


# -- rate pools (§2.6) --------------------------------------------------------------------


class RecordingLimiter:
    """Stands in for the RateLimiter: records which pool each request was admitted to."""

    def __init__(self) -> None:
        self.admitted: list[tuple[str, str]] = []

    def admit(self, partner: str, pool: str, cost: float = 1) -> None:
        self.admitted.append((partner, pool))


@pytest.fixture
async def recorded(
    ucd_config: LocalUcdConfig,
) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingLimiter]]:
    app = create_local_ucd_app(ucd_config)
    async with LifespanManager(app), make_client(app) as client:
        limiter = RecordingLimiter()
        app.state.services.limiter = limiter
        yield client, limiter


@pytest.mark.parametrize(
    ("method", "path", "body", "pool"),
    [
        pytest.param("POST", "/api/user/v1/attribute/delete", {"users": []}, "upsert", id="E4"),
        pytest.param(
            "PATCH",
            PATH,
            {"old_identifier": {"uuid": "a"}, "new_identifier": {"uuid": "b"}},
            "identity_update",
            id="E5",
        ),
        pytest.param("DELETE", PATH, {"identifiers": {"uuid": "a"}}, "identity_delete", id="E6"),
        pytest.param(
            "POST", "/api/contact/v1/anonymize", {"insider_id": "x"}, "anonymize", id="E7"
        ),
        pytest.param(
            "POST", "/api/user/v1/anonymize", {"identifiers": {"uuid": "a"}}, "anonymize", id="E8"
        ),
        pytest.param("POST", "/api/user/v1/delete", {"insider_id": "x"}, "delete", id="E9"),
    ],
)
async def test_admitted_requests_count_in_their_pool(
    recorded: tuple[httpx.AsyncClient, RecordingLimiter],
    method: str,
    path: str,
    body: dict[str, Any],
    pool: str,
) -> None:
    """Admitted whatever the outcome (404 here); request-level 400s are never counted."""
    client, limiter = recorded
    await client.request(method, path, json=body)
    assert limiter.admitted == [("local", pool)]
    invalid = {"users": None} if pool == "upsert" else {}
    assert (await client.request(method, path, json=invalid)).status_code == 400
    assert limiter.admitted == [("local", pool)]
