"""UcdClient: headers, bodies, status mapping and retries, over httpx.MockTransport."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Literal

import httpx
import orjson
import pytest
from pydantic import SecretStr

from gateway.errors import (
    BadUserInput,
    Conflict,
    GatewayError,
    NotFound,
    RateLimited,
    UpstreamAuth,
    UpstreamError,
    UpstreamOutcomeUnknown,
    UpstreamUnavailable,
)
from gateway.settings import Settings
from gateway.ucd.answers import MetadataColumn, ProfileAnswer
from gateway.ucd.bulkheads import Bulkheads
from gateway.ucd.client import UcdClient
from gateway.ucd.envelope import DataEnvelope
from gateway.ucd.local_segments import LocalSegment, SegmentCondition, SegmentDefinition
from gateway.ucd.requests import (
    AttributeDeleteRequest,
    ContactAnonymizeRequest,
    DeleteUserRequest,
    ExportRequest,
    Identifier,
    IdentityDeleteRequest,
    IdentityUpdateRequest,
    ProfileRequest,
    UpsertRequest,
    UserAnonymizeRequest,
    UserRef,
)
from gateway.ucd.transport import UcdHttpClient, build_http_client
from tests.gateway.conftest import free_port_url
from tests.gateway.loopback_ucd import Behaviour, loopback_ucd

TOKEN = "s3cret-token-value"
BASE_URL = "http://ucd.test"


class Script:
    """A MockTransport handler that answers with the next response of a script.

    Each item is an ``httpx.Response`` or an exception instance to raise. The last
    item repeats once the script runs out. Requests are kept for assertions.
    """

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Sleeps:
    """Records the delays the client asks for, without sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def ucd_json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def make_client(
    script: Script, sleeps: Sleeps | None = None, **kwargs: Any
) -> tuple[UcdClient, list[httpx.Request]]:
    """A client over the script; the event hook counts requests independently of .calls."""
    seen: list[httpx.Request] = []

    async def count(request: httpx.Request) -> None:
        seen.append(request)

    http = httpx.AsyncClient(
        transport=httpx.MockTransport(script),
        base_url=BASE_URL,
        event_hooks={"request": [count]},
    )
    client = UcdClient(http, partner="acme", token=TOKEN, sleep=sleeps or Sleeps(), **kwargs)
    return client, seen


PROFILE = ProfileRequest(UserRef(email="ada@example.com"), attributes=("name",))
PROFILE_BODY = {"identifiers": {"email": "ada@example.com"}, "attributes": ["name"]}
EXPORT = ExportRequest(7, "csv", "http://gateway.test/hook", attributes="*")
UUID_A = UserRef(uuid="a")
UUID_IDENT_A = Identifier("uuid", "a")
UUID_IDENT_B = Identifier("uuid", "b")


# --- requests --------------------------------------------------------------------------


async def test_every_call_sends_partner_token_and_json_headers() -> None:
    script = Script(ucd_json(200, {"attributes": {"iid": "x"}}))
    client, _ = make_client(script)
    await client.profile(PROFILE)
    request = script.requests[0]
    assert request.headers["X-PARTNER-NAME"] == "acme"
    assert request.headers["X-REQUEST-TOKEN"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    assert orjson.loads(request.content) == PROFILE_BODY


@pytest.mark.parametrize(
    ("call", "method", "path", "body"),
    [
        pytest.param(
            lambda c: c.upsert(UpsertRequest(())),
            "POST",
            "/api/user/v1/upsert",
            {"users": []},
            id="upsert",
        ),
        pytest.param(
            lambda c: c.export(EXPORT),
            "POST",
            "/api/raw/v1/export",
            {
                "segment": {"segment_id": 7},
                "format": "csv",
                "hook": "http://gateway.test/hook",
                "attributes": "*",
            },
            id="export",
        ),
        pytest.param(
            lambda c: c.delete_attributes(AttributeDeleteRequest(())),
            "POST",
            "/api/user/v1/attribute/delete",
            {"users": []},
            id="attribute-delete",
        ),
        pytest.param(
            lambda c: c.update_identity(IdentityUpdateRequest(UUID_IDENT_A, UUID_IDENT_B)),
            "PATCH",
            "/api/user/v1/identity",
            {"old_identifier": {"uuid": "a"}, "new_identifier": {"uuid": "b"}},
            id="update-identity",
        ),
        pytest.param(
            lambda c: c.delete_identity(IdentityDeleteRequest(UUID_IDENT_A)),
            "DELETE",
            "/api/user/v1/identity",
            {"identifiers": {"uuid": "a"}},
            id="delete-identity",
        ),
        pytest.param(
            lambda c: c.anonymize_contact(ContactAnonymizeRequest("iid-1")),
            "POST",
            "/api/contact/v1/anonymize",
            {"insider_id": "iid-1"},
            id="anonymize-contact",
        ),
        pytest.param(
            lambda c: c.anonymize_user(UserAnonymizeRequest(UUID_A)),
            "POST",
            "/api/user/v1/anonymize",
            {"identifiers": {"uuid": "a"}},
            id="anonymize-user",
        ),
        pytest.param(
            lambda c: c.delete_user(DeleteUserRequest(UUID_A)),
            "POST",
            "/api/user/v1/delete",
            {"identifiers": {"uuid": "a"}},
            id="delete-user",
        ),
    ],
)
async def test_each_endpoint_uses_its_method_path_and_body(
    call: Callable[[UcdClient], Any], method: str, path: str, body: dict[str, Any]
) -> None:
    script = Script(ucd_json(200, {"data": {"successful": {}, "fail": {}}}))
    client, _ = make_client(script)
    await call(client)
    (request,) = script.requests
    assert (request.method, request.url.path) == (method, path)
    assert orjson.loads(request.content) == body
    assert client.calls == 1


async def test_paths_join_the_base_url_path_and_follow_a_changed_base_url() -> None:
    """The client merges each path once (UcdClient._url); the merge must match httpx's."""
    script = Script(ucd_json(200, {"attributes": {"iid": "x"}}))
    http = httpx.AsyncClient(transport=httpx.MockTransport(script), base_url=f"{BASE_URL}/ucd")
    client = UcdClient(http, partner="acme", token=TOKEN)
    await client.profile(PROFILE)
    http.base_url = httpx.URL("http://other.test/v2/")
    await client.profile(PROFILE)
    urls = [str(request.url) for request in script.requests]
    assert urls == [
        "http://ucd.test/ucd/api/user/v1/profile",
        "http://other.test/v2/api/user/v1/profile",
    ]


async def test_cookies_the_ucd_sets_are_sent_back_by_the_built_client() -> None:
    """build_http_client's client skips cookie work only for answers that set no cookie."""
    script = Script(
        ucd_json(200, {"attributes": {"iid": "x"}}, {"Set-Cookie": "lb=node-2; Path=/"}),
        ucd_json(200, {"attributes": {"iid": "x"}}),
    )
    built = build_http_client(Settings(_env_file=None), base_url=BASE_URL)  # type: ignore[call-arg]
    await built.aclose()
    assert isinstance(built, UcdHttpClient)
    async with UcdHttpClient(transport=httpx.MockTransport(script), base_url=BASE_URL) as http:
        client = UcdClient(http, partner="acme", token=TOKEN)
        for _ in range(3):
            await client.profile(PROFILE)
    assert [request.headers.get("Cookie") for request in script.requests] == [
        None,
        "lb=node-2",
        "lb=node-2",
    ]
    assert dict(http.cookies) == {"lb": "node-2"}


async def test_metadata_columns_returns_the_array() -> None:
    columns = [{"key": "iid", "display_name": "Profile ID", "type": "string"}]
    script = Script(ucd_json(200, columns))
    client, _ = make_client(script)
    assert await client.metadata_columns("contacts") == [
        MetadataColumn("iid", "Profile ID", "string")
    ]
    assert orjson.loads(script.requests[0].content) == {"table": "contacts"}
    assert script.requests[0].url.path == "/api/user/v3/metadata/columns"


# --- the local UCD's segment endpoint (§5.5) -----------------------------------------------

GOLD = SegmentDefinition("Gold", (SegmentCondition("c_tier", "eq", "gold"),))


async def test_local_segments_are_listed_with_a_bodiless_get_and_the_partner_headers() -> None:
    listed = {"segments": [{"segment_id": 1, "name": "All users", "conditions": []}]}
    script = Script(ucd_json(200, listed))
    client, _ = make_client(script)
    assert await client.local_segments() == [LocalSegment(1, "All users")]
    request = script.requests[0]
    assert (request.method, request.url.path) == ("GET", "/api/local/v1/segments")
    assert request.content == b""
    assert request.headers["X-PARTNER-NAME"] == "acme"
    assert request.headers["X-REQUEST-TOKEN"] == TOKEN


async def test_a_local_segment_is_created_from_its_definition() -> None:
    script = Script(ucd_json(200, {"segment_id": 4}))
    client, _ = make_client(script)
    assert await client.create_local_segment(GOLD) == 4
    request = script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/api/local/v1/segments")
    assert orjson.loads(request.content) == {
        "name": "Gold",
        "conditions": [{"attribute": "c_tier", "operator": "eq", "value": "gold"}],
    }
    assert request.headers["X-REQUEST-TOKEN"] == TOKEN


async def test_a_refused_segment_is_bad_user_input_and_not_retried() -> None:
    script = Script(ucd_json(400, {"error": "name must be defined: bad request"}))
    client, seen = make_client(script)
    with pytest.raises(BadUserInput, match="name must be defined"):
        await client.create_local_segment(GOLD)
    assert len(seen) == 1


async def test_creating_a_segment_is_not_repeated_after_a_5xx() -> None:
    client, seen = make_client(Script(ucd_json(500, {})))
    with pytest.raises(UpstreamError):
        await client.create_local_segment(GOLD)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.local_segments(), id="list"),
        pytest.param(lambda c: c.create_local_segment(GOLD), id="create"),
    ],
)
@pytest.mark.parametrize(
    "body",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"segments": [{"segment_id": "2", "name": "x"}]}, id="string-id"),
        pytest.param({"segment_id": True, "segments": [{"name": "x"}]}, id="no-id"),
    ],
)
async def test_a_malformed_segment_answer_is_upstream_error(
    call: Callable[[UcdClient], Any], body: Any
) -> None:
    client, _ = make_client(Script(ucd_json(200, body)))
    with pytest.raises(UpstreamError):
        await call(client)


async def test_export_accepts_any_200_body() -> None:
    """§3.3.3: Insider answers either {} or {"url": ...} or nothing; none is parsed."""
    script = Script(httpx.Response(200, content=b""))
    client, _ = make_client(script)
    await client.export(EXPORT)  # no UpstreamError for the empty body
    assert len(script.requests) == 1


# --- the data envelope -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"data": {"successful": {"count": 2}, "fail": {}}},
            DataEnvelope(2, 0, {}),
            id="all-ok",
        ),
        pytest.param(
            {
                "data": {
                    "successful": {"count": 1},
                    "fail": {
                        "count": 1,
                        "errors": {
                            "users.1.identifiers.*.regexp(^.+@.+\\..+$)": [
                                "not a valid email address: sample"
                            ]
                        },
                    },
                }
            },
            DataEnvelope(
                1,
                1,
                {
                    "users.1.identifiers.*.regexp(^.+@.+\\..+$)": [
                        "not a valid email address: sample"
                    ]
                },
            ),
            id="one-failed",
        ),
        pytest.param(
            {"data": {"successful": {}, "fail": {"count": 1, "errors": {"users.0.x": ["m"]}}}},
            DataEnvelope(0, 1, {"users.0.x": ["m"]}),
            id="none-ok",
        ),
        pytest.param({}, DataEnvelope(0, 0, {}), id="e4-empty-object"),
    ],
)
async def test_data_envelope_is_parsed(body: dict[str, Any], expected: DataEnvelope) -> None:
    client, _ = make_client(Script(ucd_json(200, body)))
    assert await client.delete_attributes(AttributeDeleteRequest(())) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"result": 1}, id="no-data-key"),
        pytest.param({"data": {"successful": {"count": "2"}, "fail": {}}}, id="count-not-int"),
        pytest.param({"data": {"successful": {}, "fail": {"errors": {"k": "m"}}}}, id="not-lists"),
        pytest.param([1, 2], id="array"),
    ],
)
async def test_malformed_envelope_is_upstream_error(body: Any) -> None:
    client, _ = make_client(Script(ucd_json(200, body)))
    with pytest.raises(UpstreamError) as info:
        await client.upsert(UpsertRequest(()))
    assert info.value.extensions == {"code": "UPSTREAM_ERROR", "status": 200}


async def test_body_that_is_not_json_is_upstream_error() -> None:
    client, _ = make_client(Script(httpx.Response(200, content=b"<html>oops</html>")))
    with pytest.raises(UpstreamError, match="not JSON"):
        await client.profile(PROFILE)


async def test_profile_that_is_not_an_object_is_upstream_error() -> None:
    client, _ = make_client(Script(ucd_json(200, ["x"])))
    with pytest.raises(UpstreamError):
        await client.profile(PROFILE)


async def test_metadata_entries_without_a_string_key_are_skipped() -> None:
    """E10 is undocumented publicly (§3.9): entries of other shapes are not errors."""
    columns = [
        {"key": "iid", "display_name": "Profile ID", "type": "string"},
        {"display_name": "no key"},
        {"key": 5},
        {"key": "purchase", "params": [{"key": "currency", "type": "string"}, {"type": "x"}]},
        {"key": "cart", "params": "not a list"},
    ]
    client, _ = make_client(Script(ucd_json(200, columns)))
    assert await client.metadata_columns("events") == [
        MetadataColumn("iid", "Profile ID", "string"),
        MetadataColumn(
            "purchase", "purchase", params=(MetadataColumn("currency", "currency", "string"),)
        ),
        MetadataColumn("cart", "cart"),
    ]


async def test_the_readiness_check_asks_e10_for_the_contacts_table() -> None:
    script = Script(ucd_json(200, [{"odd": True}]))
    client, _ = make_client(script)
    await client.check_ready()
    assert script.requests[0].url.path == "/api/user/v3/metadata/columns"
    assert orjson.loads(script.requests[0].content) == {"table": "contacts"}


@pytest.mark.parametrize(
    "answer",
    [pytest.param({"key": "iid"}, id="an-object"), pytest.param(["iid"], id="a-list-of-strings")],
)
async def test_the_readiness_check_refuses_what_is_not_a_list_of_objects(answer: object) -> None:
    client, _ = make_client(Script(ucd_json(200, answer)))
    with pytest.raises(UpstreamError, match="not a list of objects"):
        await client.check_ready()


async def test_metadata_that_is_not_a_list_is_upstream_error() -> None:
    client, _ = make_client(Script(ucd_json(200, {"key": "iid"})))
    with pytest.raises(UpstreamError):
        await client.metadata_columns("contacts")


# --- status mapping --------------------------------------------------------------------


async def test_400_passes_the_ucd_text_through_as_bad_user_input() -> None:
    text = "not a valid email address: sample: bad request"
    client, _ = make_client(Script(ucd_json(400, {"error": text})))
    with pytest.raises(BadUserInput) as info:
        await client.anonymize_user(UserAnonymizeRequest(UserRef(email="sample")))
    assert info.value.message == text
    assert info.value.extensions == {"code": "BAD_USER_INPUT"}


async def test_400_success_message_style_is_read_too() -> None:
    text = "Request data is not in valid JSON format."
    client, _ = make_client(Script(ucd_json(400, {"success": False, "message": text})))
    with pytest.raises(BadUserInput, match="valid JSON format"):
        await client.delete_user(DeleteUserRequest(UserRef()))


async def test_identifier_taken_is_conflict() -> None:
    text = "new identifier already has a user assigned to it: bad request"
    client, _ = make_client(Script(ucd_json(400, {"error": text})))
    with pytest.raises(Conflict) as info:
        await client.update_identity(IdentityUpdateRequest(UUID_IDENT_A, UUID_IDENT_B))
    assert info.value.extensions == {"code": "CONFLICT"}
    assert info.value.message == text


@pytest.mark.parametrize("text", ["Empty Partner", "Empty Token", "Partner is invalid."])
async def test_400_about_partner_headers_is_upstream_auth(text: str) -> None:
    client, _ = make_client(Script(ucd_json(400, {"success": False, "message": text})))
    with pytest.raises(UpstreamAuth):
        await client.metadata_columns("contacts")


async def test_profile_404_is_none() -> None:
    body = {"error": "no such user for these identifiers: no data"}
    client, _ = make_client(Script(ucd_json(404, body)))
    assert await client.profile(PROFILE) is None


async def test_404_no_data_is_not_found_for_other_calls() -> None:
    body = {"error": "no such user for these identifiers: no data"}
    client, _ = make_client(Script(ucd_json(404, body)))
    with pytest.raises(NotFound) as info:
        await client.delete_user(DeleteUserRequest(UUID_A))
    assert info.value.extensions == {"code": "NOT_FOUND"}
    assert "no such user" in info.value.message


async def test_404_for_an_unknown_path_is_upstream_error_not_a_missing_user() -> None:
    """A base URL that points at something other than a UCD must not look like 'no user'."""
    client, _ = make_client(Script(ucd_json(404, {"error": "not found"})))
    with pytest.raises(UpstreamError) as info:
        await client.profile(PROFILE)
    assert info.value.extensions == {"code": "UPSTREAM_ERROR", "status": 404}


@pytest.mark.parametrize(
    ("status", "message"),
    [
        pytest.param(401, "Partner token authentication failed.", id="401"),
        pytest.param(403, "Access Denied. You do not have sufficient access.", id="403"),
    ],
)
async def test_401_and_403_are_upstream_auth_and_never_retried(status: int, message: str) -> None:
    script = Script(ucd_json(status, {"success": False, "message": message}))
    client, seen = make_client(script, max_retries=5)
    with pytest.raises(UpstreamAuth) as info:
        await client.profile(PROFILE)
    assert info.value.extensions == {"code": "UPSTREAM_AUTH"}
    assert len(seen) == 1
    assert client.calls == 1


@pytest.mark.parametrize("status", [302, 409, 418])
async def test_unexpected_status_is_upstream_error(status: int) -> None:
    client, seen = make_client(Script(httpx.Response(status)))
    with pytest.raises(UpstreamError) as info:
        await client.profile(PROFILE)
    assert info.value.status == status
    assert len(seen) == 1


# --- retries ---------------------------------------------------------------------------


async def test_429_waits_retry_after_then_succeeds() -> None:
    busy = ucd_json(429, {"error": "rejected: too many requests"}, {"Retry-After": "2"})
    script = Script(busy, ucd_json(200, {"attributes": {"iid": "x"}}))
    sleeps = Sleeps()
    client, seen = make_client(script, sleeps)
    assert await client.profile(PROFILE) == ProfileAnswer({"iid": "x"}, {})
    assert sleeps.delays == [2]
    assert len(seen) == 2


async def test_429_after_all_retries_is_rate_limited_with_retry_after() -> None:
    busy = ucd_json(429, {"error": "rejected: too many requests"}, {"Retry-After": "3"})
    sleeps = Sleeps()
    client, seen = make_client(Script(busy), sleeps, max_retries=2)
    with pytest.raises(RateLimited) as info:
        await client.upsert(UpsertRequest(()))
    assert info.value.extensions == {"code": "RATE_LIMITED", "retryAfter": 3}
    assert len(seen) == 3
    assert sleeps.delays == [3, 3]


async def test_retry_after_beyond_the_cap_fails_at_once() -> None:
    """E3's 429 waits until midnight UTC: sleeping that long inside a request helps no one."""
    busy = ucd_json(429, {"error": "rejected: too many requests"}, {"Retry-After": "40000"})
    sleeps = Sleeps()
    client, seen = make_client(Script(busy), sleeps, max_retry_after=5.0)
    with pytest.raises(RateLimited) as info:
        await client.export(EXPORT)
    assert info.value.retry_after == 40000
    assert sleeps.delays == []
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("0.2", 1, id="fraction-rounds-up-to-minimum"),
        pytest.param("", 1, id="missing"),
        pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", 1, id="past-http-date"),
    ],
)
async def test_retry_after_is_whole_seconds_at_least_one(header: str, expected: int) -> None:
    headers = {"Retry-After": header} if header else {}
    busy = ucd_json(429, {"error": "rejected: too many requests"}, headers)
    client, _ = make_client(Script(busy), max_retries=0)
    with pytest.raises(RateLimited) as info:
        await client.profile(PROFILE)
    assert info.value.retry_after == expected


async def test_429_is_retried_even_for_calls_that_are_not_safe_to_repeat() -> None:
    """§2.6: a 429 is decided before the operation runs, so repeating it is safe."""
    busy = ucd_json(429, {"error": "rejected: too many requests"}, {"Retry-After": "1"})
    script = Script(busy, ucd_json(200, {}))
    client, seen = make_client(script)
    await client.delete_user(DeleteUserRequest(UUID_A))
    assert len(seen) == 2


async def test_5xx_is_retried_with_backoff_then_succeeds() -> None:
    failed = ucd_json(500, {"success": False, "message": "unknown error"})
    script = Script(failed, ucd_json(503, {}), ucd_json(200, [{"key": "iid"}]))
    sleeps = Sleeps()
    client, seen = make_client(script, sleeps, backoff_base=0.1)
    assert await client.metadata_columns("contacts") == [MetadataColumn("iid", "iid")]
    assert len(seen) == 3
    assert len(sleeps.delays) == 2
    assert all(0 <= d <= 0.1 * 2**i for i, d in enumerate(sleeps.delays))


async def test_5xx_after_all_retries_is_upstream_error() -> None:
    client, seen = make_client(Script(ucd_json(502, {})), max_retries=2)
    with pytest.raises(UpstreamError) as info:
        await client.profile(PROFILE)
    assert info.value.extensions == {"code": "UPSTREAM_ERROR", "status": 502}
    assert len(seen) == 3


async def test_5xx_is_not_retried_for_identity_changes() -> None:
    client, seen = make_client(Script(ucd_json(500, {})), max_retries=2)
    with pytest.raises(UpstreamError):
        await client.update_identity(IdentityUpdateRequest(UUID_IDENT_A, UUID_IDENT_B))
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        pytest.param(httpx.ReadTimeout("slow"), "did not answer in time", id="timeout"),
        pytest.param(httpx.ConnectError("refused"), "refused the connection", id="refused"),
        pytest.param(
            httpx.RemoteProtocolError("peer closed"), "dropped the connection", id="dropped"
        ),
    ],
)
async def test_transport_errors_become_upstream_unavailable_after_retries(
    exc: Exception, words: str
) -> None:
    client, seen = make_client(Script(exc), max_retries=2)
    with pytest.raises(UpstreamUnavailable) as info:
        await client.profile(PROFILE)
    assert words in info.value.message
    assert info.value.extensions == {"code": "UPSTREAM_UNAVAILABLE"}
    assert len(seen) == 3
    assert client.calls == 3


async def test_transport_error_then_success_is_invisible_to_the_caller() -> None:
    script = Script(httpx.ConnectError("refused"), ucd_json(200, {"attributes": {}}))
    client, seen = make_client(script)
    assert await client.profile(PROFILE) == ProfileAnswer({}, {})
    assert len(seen) == 2


async def test_a_delete_whose_answer_is_lost_is_not_retried_and_its_outcome_unknown() -> None:
    client, seen = make_client(Script(httpx.ReadTimeout("slow")), max_retries=2)
    with pytest.raises(UpstreamOutcomeUnknown) as info:
        await client.delete_user(DeleteUserRequest(UUID_A))
    assert info.value.extensions == {"code": "UPSTREAM_OUTCOME_UNKNOWN"}
    assert info.value.message == (
        "the UCD may or may not have applied POST /api/user/v1/delete: "
        "its answer was lost (no answer in time)"
    )
    assert len(seen) == 1


async def test_a_delete_that_was_never_sent_is_retried() -> None:
    """A refused connection means the request never left: sending it again is safe."""
    script = Script(httpx.ConnectError("refused"), ucd_json(200, {}))
    client, seen = make_client(script, max_retries=2)
    await client.delete_user(DeleteUserRequest(UUID_A))
    assert len(seen) == 2


async def test_concurrency_is_bounded() -> None:
    """No more than max_concurrency requests are in flight at once."""
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return ucd_json(200, {"attributes": {}})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url=BASE_URL)
    client = UcdClient(http, partner="acme", token=TOKEN, bulkheads=Bulkheads(reads=3))
    await asyncio.gather(*(client.profile(PROFILE) for _ in range(12)))
    assert peak == 3
    assert client.calls == 12


# --- secrets ---------------------------------------------------------------------------


async def test_token_is_in_no_repr_or_error_message() -> None:
    settings = Settings(token=SecretStr(TOKEN), _env_file=None)  # type: ignore[call-arg]
    client, _ = make_client(Script(ucd_json(403, {"success": False, "message": "Access Denied."})))
    errors: list[GatewayError] = []
    try:
        await client.profile(PROFILE)
    except GatewayError as exc:
        errors.append(exc)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)
    assert TOKEN not in repr(client)
    assert errors
    assert all(TOKEN not in str(e) and TOKEN not in repr(e.extensions) for e in errors)


async def test_secret_token_is_accepted_and_sent_in_clear_on_the_wire() -> None:
    script = Script(ucd_json(200, []))
    http = httpx.AsyncClient(transport=httpx.MockTransport(script), base_url=BASE_URL)
    client = UcdClient(http, partner="acme", token=SecretStr(TOKEN))
    await client.metadata_columns("events")
    assert script.requests[0].headers["X-REQUEST-TOKEN"] == TOKEN


async def test_logs_carry_neither_the_token_nor_the_callers_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The UCD's error texts echo personal data; they go back to the caller, never to logs."""
    email_text = "not a valid email address: ada@example.com: bad request"
    script = Script(
        ucd_json(500, {"success": False, "message": "ada@example.com"}),
        ucd_json(400, {"error": email_text}),
    )
    client, _ = make_client(script, max_retries=1)
    caplog.set_level("DEBUG")
    with pytest.raises(BadUserInput):
        await client.profile(PROFILE)
    client2, _ = make_client(Script(ucd_json(502, {"error": "ada@example.com"})), max_retries=0)
    with pytest.raises(UpstreamError):
        await client2.profile(PROFILE)
    assert caplog.records, "the retry and the failure are logged"
    assert "ada@example.com" not in caplog.text
    assert TOKEN not in caplog.text


# --- the production transports, over real sockets --------------------------------------


@pytest.mark.parametrize("transport", ["lean", "aiohttp", "httpx"])
@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        pytest.param("drop", "dropped the connection", id="dropped"),
        pytest.param("hang", "did not answer in time", id="timeout"),
        pytest.param("refuse", "refused the connection", id="refused"),
    ],
)
async def test_both_transports_report_network_failures_alike(
    transport: Literal["lean", "aiohttp", "httpx"],
    behaviour: Behaviour | Literal["refuse"],
    words: str,
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, http_transport=transport, request_timeout=0.3, connect_timeout=0.3
    )
    async with contextlib.AsyncExitStack() as stack:
        if behaviour == "refuse":
            url = free_port_url()
        else:
            url = (await stack.enter_async_context(loopback_ucd(every=behaviour))).url
        http = build_http_client(settings, base_url=url)
        stack.push_async_callback(http.aclose)
        client = UcdClient(http, partner="acme", token=TOKEN, max_retries=0)
        with pytest.raises(UpstreamUnavailable) as info:
            await client.profile(PROFILE)
    assert words in info.value.message


async def test_build_http_client_needs_a_url_in_embedded_mode() -> None:
    with pytest.raises(ValueError, match="base URL"):
        build_http_client(Settings(_env_file=None))  # type: ignore[call-arg]
