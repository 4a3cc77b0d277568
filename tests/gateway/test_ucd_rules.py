"""One table of identifier and name values, asserted on both sides of the wire.

Each row is checked three times: against ``gateway.ucd.rules`` itself, against the
gateway's input validation (refused before any UCD call, with the UCD's message), and
against the local UCD over HTTP (E1's per-user error key and message, §3.1.3). The two
newline rows are the ones Python's ``$`` and ``re.DOTALL`` used to let through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from gateway.ucd.paths import PROFILE_PATH, UPSERT_PATH
from gateway.ucd.rules import CUSTOM_NAME, EMAIL, EVENT_NAME, PHONE_NUMBER, RULES, Rule
from tests.gateway.conftest import TOKEN, UPSERT, CallLog, Gateway

AUTH = {"X-PARTNER-NAME": "local", "X-REQUEST-TOKEN": TOKEN}
TIMESTAMP = "2026-01-10T10:00:00Z"


@dataclass(frozen=True)
class Row:
    rule: Rule
    value: str
    ok: bool


ROWS = [
    pytest.param(Row(EMAIL, "ada@example.com", True), id="email"),
    pytest.param(Row(EMAIL, " Ada@Example.COM ", True), id="email-normalised"),
    pytest.param(Row(EMAIL, "a\nb@x.io", False), id="email-embedded-newline"),
    pytest.param(Row(EMAIL, "sample", False), id="email-no-at"),
    pytest.param(Row(EMAIL, "a@b", False), id="email-no-dot"),
    pytest.param(Row(PHONE_NUMBER, "+905551112233", True), id="phone"),
    pytest.param(Row(PHONE_NUMBER, "+905551112233\n", False), id="phone-trailing-newline"),
    pytest.param(Row(PHONE_NUMBER, "05551112233", False), id="phone-no-plus"),
    pytest.param(Row(PHONE_NUMBER, "+90555", False), id="phone-too-short"),
    pytest.param(Row(PHONE_NUMBER, "+٩٠٥٥٥١١١٢٢٣٣", False), id="phone-arabic-digits"),
    pytest.param(Row(EVENT_NAME, "page_view", True), id="event"),
    pytest.param(Row(EVENT_NAME, "cart.v2_step-1", True), id="event-punctuation"),
    pytest.param(Row(EVENT_NAME, "Page_view", False), id="event-upper-case"),
    pytest.param(Row(EVENT_NAME, "page_view\n", False), id="event-trailing-newline"),
    pytest.param(Row(EVENT_NAME, "_page_view", False), id="event-leading-underscore"),
    pytest.param(Row(CUSTOM_NAME, "t" * 128, True), id="custom-name-128"),
    pytest.param(Row(CUSTOM_NAME, "t" * 129, False), id="custom-name-129"),
    pytest.param(Row(CUSTOM_NAME, "", False), id="custom-name-empty"),
]

#: What the gateway refuses each rule with: the GraphQL input path and the UCD's message.
GATEWAY_REFUSAL = {
    EMAIL.name: ("users.0.key.email", "not a valid email address: {}"),
    PHONE_NUMBER.name: ("users.0.key.phoneNumber", "user has an invalid phone number: {}"),
    EVENT_NAME.name: ("users.0.events.0.name", "invalid event name: {}"),
    CUSTOM_NAME.name: ("users.0.key.custom.0.name", "invalid custom name: {}"),
}

#: E1's per-user error key of each rule (§3.1.3), the rule text taken verbatim from the spec.
UCD_ERROR_KEY = {
    EMAIL.name: r"users.0.identifiers.*.regexp(^.+@.+\..+$)",
    PHONE_NUMBER.name: r"users.0.identifiers.*.regexp(^\+[1-9]\d{6,14}$)",
    EVENT_NAME.name: "users.0.events.0.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)",
    CUSTOM_NAME.name: "users.0.identifiers.custom.*.length(1,128)",
}


def graphql_user(row: Row) -> dict[str, Any]:
    """An upsertUsers item that puts ``row.value`` where its rule applies."""
    key: dict[str, Any] = {"uuid": "rules-user"}
    events = [{"name": "session_start", "timestamp": TIMESTAMP}]
    if row.rule is EMAIL:
        key = {"email": row.value}
    elif row.rule is PHONE_NUMBER:
        key = {"phoneNumber": row.value}
    elif row.rule is CUSTOM_NAME:
        key = {"custom": [{"name": row.value, "value": "v-1"}]}
    else:
        events = [{"name": row.value, "timestamp": TIMESTAMP}]
    return {"key": key, "events": events}


def ucd_user(row: Row) -> dict[str, Any]:
    """The same user in the UCD's own E1 shape."""
    identifiers: dict[str, Any] = {"uuid": "rules-user"}
    events = [{"event_name": "session_start", "timestamp": TIMESTAMP}]
    if row.rule is EMAIL:
        identifiers = {"email": row.value}
    elif row.rule is PHONE_NUMBER:
        identifiers = {"phone_number": row.value}
    elif row.rule is CUSTOM_NAME:
        identifiers = {"custom": {row.value: "v-1"}}
    else:
        events = [{"event_name": row.value, "timestamp": TIMESTAMP}]
    return {"identifiers": identifiers, "events": events}


def test_every_rule_has_a_row() -> None:
    checked = {param.values[0].rule.name for param in ROWS}  # type: ignore[union-attr]
    assert checked == set(RULES) - {"blocked"}


@pytest.mark.parametrize("row", ROWS)
def test_the_rule_decides(row: Row) -> None:
    assert row.rule.check(row.value) is row.ok


@pytest.mark.parametrize("row", ROWS)
async def test_the_gateway_refuses_before_any_ucd_call(
    row: Row, gateway: Gateway, ucd_calls: CallLog
) -> None:
    data = await gateway.ok(UPSERT, {"input": {"users": [graphql_user(row)]}})
    result = data["upsertUsers"]["results"][0]
    if row.ok:
        assert result == {"index": 0, "ok": True, "errors": []}
        assert len(ucd_calls.upserts) == 1
        return
    path, message = GATEWAY_REFUSAL[row.rule.name]
    assert result == {
        "index": 0,
        "ok": False,
        "errors": [{"path": path, "message": message.format(row.value)}],
    }
    assert ucd_calls.calls == []


@pytest.mark.parametrize("row", ROWS)
async def test_the_local_ucd_refuses_with_its_error_key(
    row: Row, ucd_http: httpx.AsyncClient
) -> None:
    response = await ucd_http.post(UPSERT_PATH, json={"users": [ucd_user(row)]}, headers=AUTH)
    assert response.status_code == 200, response.text
    data = orjson.loads(response.content)["data"]
    if row.ok:
        assert data["successful"]["count"] == 1, data
        return
    assert data["fail"]["count"] == 1
    message = GATEWAY_REFUSAL[row.rule.name][1].format(row.value)
    assert data["fail"]["errors"] == {UCD_ERROR_KEY[row.rule.name]: [message]}


async def test_a_single_user_call_refuses_a_trailing_newline_with_the_ucd_text(
    ucd_http: httpx.AsyncClient,
) -> None:
    """E2 answers a refused identifier with the §3.1.3 message and ``: bad request``."""
    body = {"identifiers": {"phone_number": "+905551112233\n"}, "attributes": ["name"]}
    response = await ucd_http.post(PROFILE_PATH, json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == {
        "error": "user has an invalid phone number: +905551112233\n: bad request"
    }
