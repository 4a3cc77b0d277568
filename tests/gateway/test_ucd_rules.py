"""One table of identifier and name values, asserted on both sides of the wire.

Each row is checked three times: against ``gateway.ucd.rules`` itself, against the
gateway's input validation (refused before any UCD call, with the UCD's message), and
against the local UCD over HTTP (E1's per-user error key and message, §3.1.3). The two
newline rows of emails, phones and event names are the ones Python's ``$`` and
``re.DOTALL`` used to let through; the control-character rows of custom names are the
[LOCAL] part of that rule (gateway/ucd/rules.py says why ``../`` is allowed). The
identifier-value rows are the gateway's own bound: it refuses them, the local UCD, like
the real one, stores them.

The blocked values of §4.2 have their own rows (``BLOCKED_ROWS``): they are compared after
normalisation, which only emails have, so ``" NULL "`` is blocked as an email while a UUID
or a phone number ``" null "`` is used as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from gateway.api.validation import IDENTIFIER_VALUE_MESSAGE
from gateway.ucd.paths import PROFILE_PATH, UPSERT_PATH
from gateway.ucd.rules import (
    BLOCKED,
    CUSTOM_NAME,
    EMAIL,
    EVENT_NAME,
    IDENTIFIER_VALUE,
    PHONE_NUMBER,
    RULES,
    Rule,
    normalise_identifier,
)
from tests.gateway.conftest import TOKEN, UPSERT, CallLog, Gateway

AUTH = {"X-PARTNER-NAME": "local", "X-REQUEST-TOKEN": TOKEN}
TIMESTAMP = "2026-01-10T10:00:00Z"


@dataclass(frozen=True)
class Row:
    rule: Rule
    value: str
    ok: bool


#: (id, row) as a plain typed list: pytest's params hold their values as ``object``.
NAMED_ROWS: list[tuple[str, Row]] = [
    ("email", Row(EMAIL, "ada@example.com", True)),
    ("email-normalised", Row(EMAIL, " Ada@Example.COM ", True)),
    ("email-embedded-newline", Row(EMAIL, "a\nb@x.io", False)),
    ("email-no-at", Row(EMAIL, "sample", False)),
    ("email-no-dot", Row(EMAIL, "a@b", False)),
    ("phone", Row(PHONE_NUMBER, "+905551112233", True)),
    ("phone-trailing-newline", Row(PHONE_NUMBER, "+905551112233\n", False)),
    ("phone-no-plus", Row(PHONE_NUMBER, "05551112233", False)),
    ("phone-too-short", Row(PHONE_NUMBER, "+90555", False)),
    ("phone-arabic-digits", Row(PHONE_NUMBER, "+٩٠٥٥٥١١١٢٢٣٣", False)),
    ("event", Row(EVENT_NAME, "page_view", True)),
    ("event-punctuation", Row(EVENT_NAME, "cart.v2_step-1", True)),
    ("event-upper-case", Row(EVENT_NAME, "Page_view", False)),
    ("event-trailing-newline", Row(EVENT_NAME, "page_view\n", False)),
    ("event-leading-underscore", Row(EVENT_NAME, "_page_view", False)),
    ("custom-name-128", Row(CUSTOM_NAME, "t" * 128, True)),
    ("custom-name-129", Row(CUSTOM_NAME, "t" * 129, False)),
    ("custom-name-empty", Row(CUSTOM_NAME, "", False)),
    ("custom-name-crlf", Row(CUSTOM_NAME, "tier\r\nx", False)),
    ("custom-name-lf", Row(CUSTOM_NAME, "tier\n", False)),
    ("custom-name-nul", Row(CUSTOM_NAME, "ti\x00er", False)),
    ("custom-name-tab", Row(CUSTOM_NAME, "ti\ter", False)),
    ("custom-name-del", Row(CUSTOM_NAME, "tier\x7f", False)),
    ("custom-name-c1", Row(CUSTOM_NAME, "tier\x85", False)),
    # [LOCAL] names are never paths (rules.py), so path-like text is allowed, as is Unicode.
    ("custom-name-dot-dot-slash", Row(CUSTOM_NAME, "../etc/passwd", True)),
    ("custom-name-unicode", Row(CUSTOM_NAME, "größe_ü", True)),
    ("custom-name-128-with-space", Row(CUSTOM_NAME, "t " * 64, True)),
    # [LOCAL] the gateway's own bound (rules.py): the contract has none, the UCD stores these.
    ("identifier-value-1024", Row(IDENTIFIER_VALUE, "u" * 1024, True)),
    ("identifier-value-1025", Row(IDENTIFIER_VALUE, "u" * 1025, False)),
    ("identifier-value-lf", Row(IDENTIFIER_VALUE, "u-1\n", False)),
    ("identifier-value-crlf", Row(IDENTIFIER_VALUE, "u-1\r\nforged: line", False)),
    ("identifier-value-nul", Row(IDENTIFIER_VALUE, "u\x00-1", False)),
    ("identifier-value-c1", Row(IDENTIFIER_VALUE, "u-1\x85", False)),
    ("identifier-value-unicode", Row(IDENTIFIER_VALUE, "größe-ü 1", True)),
]
ROWS = [pytest.param(row, id=name) for name, row in NAMED_ROWS]

#: What the gateway refuses each rule with: the GraphQL input path and the UCD's message.
GATEWAY_REFUSAL = {
    EMAIL.name: ("users.0.key.email", "not a valid email address: {}"),
    PHONE_NUMBER.name: ("users.0.key.phoneNumber", "user has an invalid phone number: {}"),
    EVENT_NAME.name: ("users.0.events.0.name", "invalid event name: {}"),
    CUSTOM_NAME.name: ("users.0.key.custom.0.name", "invalid custom name: {}"),
    IDENTIFIER_VALUE.name: ("users.0.key.uuid", IDENTIFIER_VALUE_MESSAGE),
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
    elif row.rule is IDENTIFIER_VALUE:
        key = {"uuid": row.value}
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
    elif row.rule is IDENTIFIER_VALUE:
        identifiers = {"uuid": row.value}
    else:
        events = [{"event_name": row.value, "timestamp": TIMESTAMP}]
    return {"identifiers": identifiers, "events": events}


def test_every_rule_has_a_row() -> None:
    checked = {row.rule.name for _, row in NAMED_ROWS}
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
    if row.ok or not row.rule.key:
        # A rule without a UCD key is the gateway's own: the UCD stores the value.
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


# --- custom names beyond identifiers: attributes and event parameters ----------------------

#: (where, a name, whether it is allowed): the same CUSTOM_NAME rule in its other two places.
OTHER_PLACES = [
    pytest.param(where, name, ok, id=f"{where}-{label}")
    for where in ("attribute", "event-param")
    for label, name, ok in (("crlf", "tier\r\nx", False), ("dot-dot-slash", "../x", True))
]

#: Per place: the gateway's input path and the local UCD's E1 error key.
OTHER_PLACE_PATHS = {
    "attribute": ("users.0.attributes.custom.0.name", "users.0.attributes.custom.*.length(1,128)"),
    "event-param": (
        "users.0.events.0.custom.{}",
        "users.0.events.0.event_params.custom.*.length(1,128)",
    ),
}


@pytest.mark.parametrize(("where", "name", "ok"), OTHER_PLACES)
async def test_custom_attribute_and_parameter_names_follow_the_same_rule_on_both_sides(
    where: str,
    name: str,
    ok: bool,
    gateway: Gateway,
    ucd_calls: CallLog,
    ucd_http: httpx.AsyncClient,
) -> None:
    event: dict[str, Any] = {"name": "session_start", "timestamp": TIMESTAMP}
    wire_event: dict[str, Any] = {"event_name": "session_start", "timestamp": TIMESTAMP}
    user: dict[str, Any] = {"key": {"uuid": "rules-user"}, "events": [event]}
    wire: dict[str, Any] = {"identifiers": {"uuid": "rules-user"}, "events": [wire_event]}
    if where == "attribute":
        user["attributes"] = {"custom": [{"name": name, "value": "gold"}]}
        wire["attributes"] = {"custom": {name: "gold"}}
    else:
        event["custom"] = {name: "gold"}
        wire_event["event_params"] = {"custom": {name: "gold"}}
    path, key = OTHER_PLACE_PATHS[where]
    message = f"invalid custom name: {name}"

    data = await gateway.ok(UPSERT, {"input": {"users": [user]}})
    result = data["upsertUsers"]["results"][0]
    if ok:
        assert result == {"index": 0, "ok": True, "errors": []}
        assert len(ucd_calls.upserts) == 1
    else:
        errors = [{"path": path.format(name), "message": message}]
        assert result == {"index": 0, "ok": False, "errors": errors}
        assert ucd_calls.calls == []

    response = await ucd_http.post(UPSERT_PATH, json={"users": [wire]}, headers=AUTH)
    answer = orjson.loads(response.content)["data"]
    if ok:
        assert answer["successful"]["count"] == 1, answer
    else:
        assert answer["fail"]["errors"] == {key: [message]}


# --- blocked values (§4.2) ------------------------------------------------------------------

#: The local UCD's answer when no identifier is left (§3.1.3; the typo is the UCD's).
REQUIRED = "either insider_id or idenifiers must be specified"


@dataclass(frozen=True)
class BlockedRow:
    """An identifier value next to a blocked one, and what each side makes of it.

    ``refusal`` is the gateway's (input path, message), or None when it sends the user;
    ``ucd_errors`` is E1's per-user errors for the same value, or None when it is stored.
    """

    field: str
    kind: str
    value: str
    blocked: bool
    refusal: tuple[str, str] | None
    ucd_errors: dict[str, list[str]] | None


BLOCKED_ROWS = [
    pytest.param(
        # UUIDs are used exactly as sent: " null " is not "null", so it names a user.
        BlockedRow("uuid", "uuid", " null ", False, None, None),
        id="uuid-padded-null-is-used-as-sent",
    ),
    pytest.param(
        # Emails are trimmed and lower-cased first: " NULL " is "null", ignored, so the key
        # names nobody; the gateway refuses it before any call, the UCD answers required.
        BlockedRow(
            "email",
            "email",
            " NULL ",
            True,
            ("users.0.key", "the key must give an insiderId or at least one identifier value"),
            {
                "users.0.identifiers.required": [REQUIRED],
                "users.0.insider_id.required": [REQUIRED],
            },
        ),
        id="email-padded-null-is-blocked",
    ),
    pytest.param(
        # Phone numbers are used as sent: " null " is not blocked, and not E.164 either.
        BlockedRow(
            "phoneNumber",
            "phone_number",
            " null ",
            False,
            ("users.0.key.phoneNumber", "user has an invalid phone number:  null "),
            {
                r"users.0.identifiers.*.regexp(^\+[1-9]\d{6,14}$)": [
                    "user has an invalid phone number:  null "
                ]
            },
        ),
        id="phone-padded-null-is-refused-for-its-format",
    ),
]

USER_BY_UUID = (
    "query($uuid: String!) { user(key: {uuid: $uuid}) { uuid identifiers { name value } } }"
)


@pytest.mark.parametrize("row", BLOCKED_ROWS)
def test_a_value_is_blocked_only_once_normalised(row: BlockedRow) -> None:
    assert BLOCKED.check(normalise_identifier(row.kind, row.value)) is row.blocked


@pytest.mark.parametrize("row", BLOCKED_ROWS)
async def test_the_gateway_sends_or_refuses_a_value_next_to_a_blocked_one(
    row: BlockedRow, gateway: Gateway, ucd_calls: CallLog
) -> None:
    item = {
        "key": {row.field: row.value},
        "events": [{"name": "session_start", "timestamp": TIMESTAMP}],
    }
    data = await gateway.ok(UPSERT, {"input": {"users": [item]}})
    result = data["upsertUsers"]["results"][0]
    if row.refusal is not None:
        path, message = row.refusal
        assert result == {"index": 0, "ok": False, "errors": [{"path": path, "message": message}]}
        assert ucd_calls.calls == []
        return
    assert result == {"index": 0, "ok": True, "errors": []}
    # Sent as the UCD uses it (not trimmed), and found again by the same value.
    assert [c.body["users"][0]["identifiers"] for c in ucd_calls.upserts] == [{row.kind: row.value}]
    found = await gateway.ok(USER_BY_UUID, {"uuid": row.value})
    assert found["user"] == {
        "uuid": row.value,
        "identifiers": [{"name": row.kind, "value": row.value}],
    }


@pytest.mark.parametrize("row", BLOCKED_ROWS)
async def test_the_local_ucd_stores_or_refuses_a_value_next_to_a_blocked_one(
    row: BlockedRow, ucd_http: httpx.AsyncClient
) -> None:
    user = {
        "identifiers": {row.kind: row.value},
        "events": [{"event_name": "session_start", "timestamp": TIMESTAMP}],
    }
    response = await ucd_http.post(UPSERT_PATH, json={"users": [user]}, headers=AUTH)
    assert response.status_code == 200, response.text
    data = orjson.loads(response.content)["data"]
    if row.ucd_errors is None:
        assert data["successful"]["count"] == 1, data
        return
    assert data["fail"]["count"] == 1
    assert data["fail"]["errors"] == row.ucd_errors
