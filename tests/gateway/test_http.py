"""Every operation of the contract and every error code, over HTTP (POST /graphql).

The gateway app (``create_app``) runs with its lifespan in front of the in-process local
UCD (conftest's ``gateway_http``); the UCD's export webhook reaches the app in-process.
Errors are provoked by the local UCD itself where it can (fault injection §5.7, strict
rate limits §2.6, a wrong token) and by the wire otherwise (a refused connection).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from gateway.settings import Settings
from tests.gateway.conftest import (
    CallLog,
    GatewayHttp,
    HookRelay,
    UcdWire,
    fail_when_body_mentions,
    free_port_url,
    serve_gateway,
)

UPSERT = """
mutation($users: [UserUpsertInput!]!) {
  upsertUsers(input: {users: $users}) { successCount failureCount
    results { index ok errors { path message } } }
}
"""
USER = "query($key: UserKey!) { user(key: $key) { insiderId email uuid name city } }"
PROFILE = "/api/user/v1/profile"


async def write(gw: GatewayHttp, *users: dict[str, Any]) -> None:
    data = await gw.ok(UPSERT, {"users": list(users)})
    assert data["upsertUsers"]["failureCount"] == 0, data


def ada(**key: Any) -> dict[str, Any]:
    return {
        "key": key or {"email": "ada@example.com", "uuid": "u-ada"},
        "attributes": {"name": "Ada", "city": "London", "custom": [{"name": "tier", "value": "g"}]},
    }


# --- queries ------------------------------------------------------------------------------


async def test_upsert_then_user_and_users_read_it_back(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    written = await gateway_http.ok(
        UPSERT,
        {"users": [ada(), {"key": {"insiderId": "no-such-id"}, "attributes": {"age": 1}}]},
    )
    assert written["upsertUsers"] == {
        "successCount": 1,
        "failureCount": 1,
        "results": [
            {"index": 0, "ok": True, "errors": []},
            {
                "index": 1,
                "ok": False,
                "errors": [
                    {"path": "users.1.key.insiderId", "message": "no such user for this insider_id"}
                ],
            },
        ],
    }
    ucd_calls.clear()
    one = await gateway_http.ok(USER, {"key": {"email": "ADA@example.com"}})
    assert one["user"]["insiderId"]
    assert one["user"] | {"insiderId": None} == {
        "insiderId": None,
        "email": "ada@example.com",
        "uuid": "u-ada",
        "name": "Ada",
        "city": "London",
    }
    (call,) = ucd_calls.calls
    assert call.body == {
        "identifiers": {"email": "ada@example.com"},
        "attributes": ["city", "email", "name", "uuid"],
    }
    ucd_calls.clear()
    many = await gateway_http.ok(
        "query($keys: [UserKey!]!) { users(keys: $keys) { name } }",
        {"keys": [{"uuid": "u-ada"}, {"uuid": "nobody"}, {"email": "ada@example.com"}]},
    )
    assert many == {"users": [{"name": "Ada"}, None, {"name": "Ada"}]}
    # uuid and email keys are different keys: the gateway cannot know they are one user.
    assert len(ucd_calls.profiles) == 3


async def test_users_reports_a_failed_user_at_its_index_and_resolves_the_others(
    gateway_http: GatewayHttp, ucd_transport: UcdWire, ucd_calls: CallLog
) -> None:
    await write(
        gateway_http,
        *({"key": {"email": f"{n}@example.com"}, "attributes": {"name": n}} for n in "abc"),
    )
    ucd_calls.clear()
    ucd_transport.fail = fail_when_body_mentions("b@example.com")
    body = await gateway_http.post(
        "query($keys: [UserKey!]!) { users(keys: $keys) { name } }",
        {"keys": [{"email": f"{n}@example.com"} for n in "abc"]},
    )
    assert body["data"] == {"users": [{"name": "a"}, None, {"name": "c"}]}
    (error,) = body["errors"]
    assert error["path"] == ["users", 1]
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE"}
    # The refused call is retried twice (profile reads are safe to repeat).
    asked = [c.body["identifiers"]["email"] for c in ucd_calls.profiles]
    assert sorted(asked) == ["a@example.com", *["b@example.com"] * 3, "c@example.com"]


async def test_start_export_runs_to_a_webhook_and_a_ready_job_whose_url_downloads(
    gateway_http: GatewayHttp, hooks: HookRelay, ucd_http: httpx.AsyncClient
) -> None:
    await write(gateway_http, ada())
    started = await gateway_http.ok(
        'mutation { startExport(input: {segmentId: "1", attributes: ["name"], '
        'customAttributes: ["tier"], format: JSON}) { id status format segmentId url } }'
    )
    job = started["startExport"]
    assert job | {"id": None} == {
        "id": None,
        "status": "PENDING",
        "format": "JSON",
        "segmentId": "1",
        "url": None,
    }
    async with asyncio.timeout(10):
        await hooks.wait_for_posts()
    ((hook, _),) = hooks.posts
    assert hook.startswith(f"http://gateway.test/hooks/exports/{job['id']}/")
    polled = await gateway_http.ok(
        "query($id: ID!) { exportJob(id: $id) { id status url readyAt expiresAt error } }",
        {"id": job["id"]},
    )
    ready = polled["exportJob"]
    assert ready["status"] == "READY"
    assert ready["error"] is None
    assert ready["readyAt"] < ready["expiresAt"]
    assert ready["url"].startswith("http://local-ucd.test/exports/local/p/")
    download = await ucd_http.get(ready["url"])
    assert download.status_code == 200
    assert b'"Ada"' in download.content
    assert b'"g"' in download.content


async def test_export_job_of_an_unknown_id_is_null(gateway_http: GatewayHttp) -> None:
    data = await gateway_http.ok('{ exportJob(id: "nope") { id } }')
    assert data == {"exportJob": None}


# --- mutations ----------------------------------------------------------------------------


async def test_delete_attributes_removes_what_it_names(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    await write(gateway_http, ada())
    ucd_calls.clear()
    data = await gateway_http.ok(
        'mutation { deleteAttributes(users: [{key: {uuid: "u-ada"}, names: ["city"], '
        'customNames: ["tier"]}, {key: {uuid: "nobody"}, names: ["city"]}]) '
        "{ successCount failureCount results { index ok errors { path message } } } }"
    )
    assert data["deleteAttributes"]["successCount"] == 1
    assert data["deleteAttributes"]["results"][1] == {
        "index": 1,
        "ok": False,
        "errors": [{"path": "users.1.key", "message": "no such user for these identifiers"}],
    }
    (call,) = ucd_calls.calls
    assert call.path == "/api/user/v1/attribute/delete"
    assert call.body["users"][0] == {
        "identifiers": {"uuid": "u-ada"},
        "whole": ["city"],
        "custom": {"whole": ["tier"]},
    }
    left = await gateway_http.ok(
        '{ user(key: {uuid: "u-ada"}) { name city tier: attribute(name: "tier", custom: true) '
        "{ value } } }"
    )
    assert left == {"user": {"name": "Ada", "city": None, "tier": None}}


async def test_delete_pii_by_insider_id_uses_the_contact_endpoint(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    await write(gateway_http, ada())
    iid = (await gateway_http.ok(USER, {"key": {"uuid": "u-ada"}}))["user"]["insiderId"]
    ucd_calls.clear()
    data = await gateway_http.ok(
        "mutation($key: UserKey!) { deletePii(key: $key) { ok user { insiderId email uuid name "
        "city } } }",
        {"key": {"insiderId": iid}},
    )
    assert data["deletePii"] == {
        "ok": True,
        "user": {"insiderId": iid, "email": None, "uuid": "u-ada", "name": None, "city": None},
    }
    assert ucd_calls.paths == ["/api/contact/v1/anonymize", PROFILE]
    assert ucd_calls.calls[0].body == {"insider_id": iid}


async def test_delete_pii_by_identifiers_uses_the_user_endpoint(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    await write(gateway_http, ada(email="ada@example.com"))
    ucd_calls.clear()
    data = await gateway_http.ok(
        'mutation { deletePii(key: {email: "ada@example.com"}) { ok user { email name } } }'
    )
    assert data["deletePii"] == {"ok": True, "user": {"email": None, "name": None}}
    # The insider_id first (the email stops finding the user), then E8, then the read-back.
    assert ucd_calls.paths == [PROFILE, "/api/user/v1/anonymize", PROFILE]
    assert ucd_calls.calls[1].body == {"identifiers": {"email": "ada@example.com"}}


async def test_update_identifier_delete_identifier_and_delete_user(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    await write(gateway_http, ada())
    ucd_calls.clear()
    updated = await gateway_http.ok(
        'mutation { updateIdentifier(old: {uuid: "u-ada"}, new: {uuid: "u-new"}) '
        "{ ok user { uuid name } } }"
    )
    assert updated == {"updateIdentifier": {"ok": True, "user": {"uuid": "u-new", "name": "Ada"}}}
    assert (ucd_calls.calls[0].method, ucd_calls.calls[0].path) == (
        "PATCH",
        "/api/user/v1/identity",
    )
    ucd_calls.clear()
    deleted = await gateway_http.ok(
        'mutation { deleteIdentifier(identifier: {email: "ada@example.com"}) '
        "{ ok user { email uuid identifiers { type value } } } }"
    )
    assert deleted == {
        "deleteIdentifier": {
            "ok": True,
            "user": {
                "email": None,
                "uuid": "u-new",
                "identifiers": [{"type": "UUID", "value": "u-new"}],
            },
        }
    }
    delete_call = ucd_calls.to("/api/user/v1/identity")[0]
    assert (delete_call.method, delete_call.body) == (
        "DELETE",
        {"identifiers": {"email": "ada@example.com"}},
    )
    ucd_calls.clear()
    gone = await gateway_http.ok('mutation { deleteUser(key: {uuid: "u-new"}) { ok } }')
    assert gone == {"deleteUser": {"ok": True}}
    assert [(c.path, c.body) for c in ucd_calls.calls] == [
        ("/api/user/v1/delete", {"identifiers": {"uuid": "u-new"}})
    ]
    assert await gateway_http.ok(USER, {"key": {"uuid": "u-new"}}) == {"user": None}


# --- error codes ----------------------------------------------------------------------------


async def test_input_refused_before_the_ucd_is_bad_user_input_with_its_path(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    email = await gateway_http.error('{ user(key: {email: "nope"}) { name } }')
    assert email["extensions"] == {"code": "BAD_USER_INPUT", "path": "key.email"}
    assert email["message"] == "not a valid email address: nope"
    one_of = await gateway_http.error(
        'mutation { deleteIdentifier(identifier: {email: "a@b.co", uuid: "x"}) { ok } }'
    )
    assert one_of["extensions"] == {"code": "BAD_USER_INPUT", "path": "identifier"}
    assert ucd_calls.calls == []


async def test_a_ucd_400_is_bad_user_input_with_the_ucds_message(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    await write(gateway_http, {"key": {"uuid": "only"}, "attributes": {"age": 1}})
    ucd_calls.clear()
    error = await gateway_http.error(
        'mutation { deleteIdentifier(identifier: {uuid: "only"}) { ok } }'
    )
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert (
        error["message"]
        == "you cannot delete the sole identifier specified for a user: bad request"
    )
    assert error["path"] == ["deleteIdentifier"]
    assert len(ucd_calls.calls) == 1


async def test_an_unknown_user_to_delete_is_not_found(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    error = await gateway_http.error('mutation { deleteUser(key: {uuid: "nobody"}) { ok } }')
    assert error["extensions"] == {"code": "NOT_FOUND"}
    assert error["message"] == "no such user for these identifiers: no data"
    assert ucd_calls.paths == ["/api/user/v1/delete"]


async def test_an_identifier_another_user_holds_is_a_conflict(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    await write(
        gateway_http,
        {"key": {"email": "a@example.com"}, "attributes": {"age": 1}},
        {"key": {"email": "b@example.com"}, "attributes": {"age": 2}},
    )
    ucd_calls.clear()
    error = await gateway_http.error(
        'mutation { updateIdentifier(old: {email: "a@example.com"}, new: {email: "b@example.com"})'
        " { ok } }"
    )
    assert error["extensions"] == {"code": "CONFLICT"}
    assert "new identifier already has a user assigned to it" in error["message"]
    assert len(ucd_calls.calls) == 1  # identity changes are never retried


@pytest.mark.parametrize(
    "ucd_faults",
    [{"seed": 1, "endpoints": {"profile": {"error_429_rate": 1, "retry_after_s": 7}}}],
    indirect=True,
)
async def test_a_429_is_rate_limited_with_retry_after(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    error = await gateway_http.error('{ user(key: {uuid: "u"}) { name } }')
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 7}
    # 7 s is over the gateway's max_retry_after (5 s): the caller hears it at once.
    assert len(ucd_calls.profiles) == 1


@pytest.mark.parametrize("ucd_strict", [True], indirect=True)
async def test_a_second_export_the_same_day_is_rate_limited_and_its_job_failed(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    query = 'mutation { startExport(input: {segmentId: "1"}) { id status } }'
    first = await gateway_http.ok(query)
    assert first["startExport"]["status"] == "PENDING"
    error = await gateway_http.error(query)
    extensions = error["extensions"]
    job_id = extensions["jobId"]
    assert extensions == {
        "code": "RATE_LIMITED",
        "retryAfter": extensions["retryAfter"],
        "jobId": job_id,
    }
    # §2.6: one export per UTC day, so the UCD asks for the rest of the day.
    assert 1 <= extensions["retryAfter"] <= 86_400
    assert job_id != first["startExport"]["id"]
    polled = await gateway_http.ok(
        "query($id: ID!) { exportJob(id: $id) { status error } }", {"id": job_id}
    )
    assert polled["exportJob"]["status"] == "FAILED"
    assert polled["exportJob"]["error"] == error["message"]
    assert len(ucd_calls.to("/api/raw/v1/export")) == 2


@pytest.mark.parametrize(
    "ucd_faults", [{"seed": 1, "endpoints": {"profile": {"drop_rate": 1}}}], indirect=True
)
async def test_dropped_connections_are_retried_then_upstream_unavailable(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    error = await gateway_http.error('{ user(key: {uuid: "u"}) { name } }')
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE"}
    assert len(ucd_calls.profiles) == 3  # the first try and max_retries (2) more


async def test_a_refused_connection_is_upstream_unavailable(settings: Settings) -> None:
    calls = CallLog()
    async with (
        httpx.AsyncClient(
            base_url=free_port_url(), event_hooks={"request": [calls.record]}
        ) as http,
        serve_gateway(settings, http) as gw,
    ):
        error = await gw.error('{ user(key: {uuid: "u"}) { name } }')
    assert error["extensions"] == {"code": "UPSTREAM_UNAVAILABLE"}
    assert "refused the connection" in error["message"]
    assert len(calls.profiles) == 3


@pytest.mark.parametrize(
    "ucd_faults",
    [
        {
            "seed": 1,
            "endpoints": {"profile": {"error_500_rate": 1}, "delete_user": {"error_500_rate": 1}},
        }
    ],
    indirect=True,
)
async def test_a_500_is_retried_when_safe_then_upstream_error(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    read = await gateway_http.error('{ user(key: {uuid: "u"}) { name } }')
    assert read["extensions"] == {"code": "UPSTREAM_ERROR", "status": 500}
    assert len(ucd_calls.profiles) == 3
    ucd_calls.clear()
    # Deleting twice is not what the caller asked for: a failed delete is not repeated.
    delete = await gateway_http.error('mutation { deleteUser(key: {uuid: "u"}) { ok } }')
    assert delete["extensions"] == {"code": "UPSTREAM_ERROR", "status": 500}
    assert ucd_calls.paths == ["/api/user/v1/delete"]


async def test_a_wrong_token_is_upstream_auth_and_not_retried(
    settings: Settings, ucd_http: httpx.AsyncClient, ucd_calls: CallLog
) -> None:
    wrong = settings.model_copy(update={"token": SecretStr("not-the-token")})
    async with serve_gateway(wrong, ucd_http) as gw:
        error = await gw.error('{ user(key: {uuid: "u"}) { name } }')
    assert error["extensions"] == {"code": "UPSTREAM_AUTH"}
    assert error["message"] == "the UCD refused the gateway's credentials (HTTP 403)"
    assert "not-the-token" not in str(error)
    assert len(ucd_calls.calls) == 1


async def test_an_unexpected_failure_is_masked_with_an_error_id(
    gateway_http: GatewayHttp, ucd_transport: UcdWire, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(request: httpx.Request) -> BaseException:
        return RuntimeError("boom: secret detail")

    ucd_transport.fail = explode
    caplog.set_level(logging.ERROR)
    error = await gateway_http.error('{ user(key: {uuid: "u"}) { name } }')
    assert error["message"] == "Internal server error"
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    error_id = error["extensions"]["errorId"]
    assert uuid.UUID(error_id)
    assert error_id in caplog.text
    assert "secret detail" not in orjson.dumps(error).decode()


async def test_the_webhook_of_an_unknown_job_changes_nothing(gateway_http: GatewayHttp) -> None:
    job = await gateway_http.runtime.exports.create(format="csv", segment_id="1")
    response = await gateway_http.client.post(
        f"/hooks/exports/{job.id}/wrong-token", json={"url": "http://x.test/f.csv"}
    )
    assert response.status_code == 404
    assert (await gateway_http.runtime.exports.get(job.id)) == job
