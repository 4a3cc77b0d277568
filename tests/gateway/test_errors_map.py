"""The UCD's per-user error keys -> GraphQL input paths (gateway.api.errors_map).

One table per endpoint of real rule keys (§3.1.3, §3.4.3) with a message the UCD sends
with them, and the input path each maps to. The last tests send refused users to the
local UCD and check that every key it answers is in the tables, so the tables cannot
drift from what the UCD says.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.api.errors_map import delete_errors, exception_errors, upsert_errors
from gateway.errors import UpstreamUnavailable
from gateway.ucd.client import UcdClient
from gateway.ucd.envelope import DataEnvelope, UserOutcome
from gateway.ucd.error_keys import ErrorKey
from gateway.ucd.paths import ATTRIBUTE_DELETE_PATH, UPSERT_PATH
from tests.gateway.conftest import TOKEN, UPSERT, Gateway, put_users, seed

AUTH = {"X-PARTNER-NAME": "local", "X-REQUEST-TOKEN": TOKEN}
T = "2026-01-10T10:00:00Z"
#: The AttributesInput.custom names of the upserted item, in input order. Custom names
#: may hold any character (§3.1.3), so some hold the dots and parentheses of a key.
CUSTOM_NAMES = ("tier", "vip", "a.b", "size(cm)", "v1.2(beta)", "a(b", "type(string)")

E1_KEYS = [
    # identity (§3.1.3): one key for every default identifier; the rule or message tells
    (r"identifiers.*.regexp(^.+@.+\..+$)", "not a valid email address: x", "key.email"),
    (
        r"identifiers.*.regexp(^\+[1-9]\d{6,14}$)",
        "user has an invalid phone number: 12345",
        "key.phoneNumber",
    ),
    ("identifiers.*.type(string)", "uuid must be string: 1", "key.uuid"),
    ("identifiers.*.type(string)", "email must be string: 1", "key.email"),
    ("identifiers.*.type(string)", "phone_number must be string: 1", "key.phoneNumber"),
    (
        "identifiers.*.in(defaults_column)",
        "key must be one of phone_number(pn), email(em) or uuid",
        "key",
    ),
    ("identifiers.custom.*.length(1,128)", "invalid custom name: ", "key.custom"),
    ("identifiers.custom.*.type(string)", "crm must be string: 1", "key.custom"),
    ("identifiers.custom.type(object)", "custom must be object: x", "key.custom"),
    ("identifiers.type(object)", "identifiers must be object: x", "key"),
    ("identifiers.required", "either insider_id or idenifiers must be specified", "key"),
    ("insider_id.required", "either insider_id or idenifiers must be specified", "key"),
    ("insider_id.type(string)", "insider_id must be string: 5", "key.insiderId"),
    ("insider_id.exists", "no such user", "key.insiderId"),
    # attributes (§4.7.1 write names and aliases)
    (r"attributes.email.regexp(^.+@.+\..+$)", "not a valid email address: bad", "attributes.email"),
    (
        "attributes.gdpr_optin.type(boolean)",
        "gdpr_optin must be boolean: yes",
        "attributes.gdprOptin",
    ),
    ("attributes.lo.type(string)", "lo must be string: 1", "attributes.locale"),
    (
        "attributes.list_id.type(number_array)",
        "list_id must be number_array: x",
        "attributes.staticSegmentIds",
    ),
    ("attributes.gdpr.type(boolean)", "gdpr is not a write name", "attributes"),
    (
        "attributes.custom.vip.type(supported)",
        "vip must be string, number...",
        "attributes.custom.1",
    ),
    ("attributes.custom.a.b.type(string)", "a.b must be string: 1", "attributes.custom.2"),
    ("attributes.custom.other.type(string)", "other must be string: 1", "attributes.custom.other"),
    (
        "attributes.custom.size(cm).type(supported)",
        "size(cm) must be string, number...",
        "attributes.custom.3",
    ),
    (
        "attributes.custom.v1.2(beta).type(supported)",
        "v1.2(beta) must be string, number...",
        "attributes.custom.4",
    ),
    (
        "attributes.custom.a(b.type(supported)",
        "a(b must be string, number...",
        "attributes.custom.5",
    ),
    (
        "attributes.custom.type(string).type(number)",
        "type(string) must be number: x",
        "attributes.custom.6",
    ),
    ("attributes.custom.*.length(1,128)", "invalid custom name: ", "attributes.custom"),
    ("attributes.custom.type(object)", "custom must be object: x", "attributes.custom"),
    ("attributes.min(1)", "attributes must contain at least one attribute", "attributes"),
    ("attributes.type(object)", "attributes must be object: x", "attributes"),
    # events (§3.1.3 event rows, §4.8.2)
    (
        "events.0.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)",
        "invalid event name: Bad",
        "events.0.name",
    ),
    ("events.1.event_name.required", "event_name is required", "events.1.name"),
    ("events.2.timestamp.type(date)", "timestamp must be date: yesterday", "events.2.timestamp"),
    ("events.0.timestamp.required", "timestamp is required", "events.0.timestamp"),
    (
        "events.3.event_params.*.required",
        "event_group_id parameter is required on purchase event",
        "events.3.eventGroupId",
    ),
    (
        "events.3.event_params.*.required",
        "unit_sale_price parameter is required on cart_page_view event",
        "events.3.unitSalePrice",
    ),
    ("events.3.event_params.*.required", "a parameter is missing", "events.3"),
    (
        "events.4.event_params.quantity.type(integer)",
        "quantity must be integer: 1.5",
        "events.4.quantity",
    ),
    ("events.4.event_params.name.type(string)", "name must be string: 3", "events.4.productName"),
    (
        "events.4.event_params.color.type(string)",
        "color must be string: 1",
        "events.4.params.color",
    ),
    ("events.4.event_params.custom.*.length(1,128)", "invalid custom name: ", "events.4.custom"),
    ("events.5.event_params.custom.type(object)", "custom must be object: x", "events.5.custom"),
    ("events.6.event_params.type(object)", "event_params must be object: x", "events.6"),
    ("events.7.type(object)", "event must be object: x", "events.7"),
    ("events.type(array)", "events must be array: x", "events"),
    ("type(object)", "user must be object: x", ""),
    ("size", "this user is bigger than the UCD's 5,000,000-byte request limit", ""),
]

E4_KEYS = [
    ("identifiers.exists", "no such user for these identifiers", "key"),
    ("insider_id.exists", "no such user", "key.insiderId"),
    (r"identifiers.*.regexp(^.+@.+\..+$)", "not a valid email address: x", "key.email"),
    ("identifiers.required", "either insider_id or idenifiers must be specified", "key"),
    ("whole.identifier", "email is an identifier", "names"),
    ("whole.type(array)", "whole must be array: x", "names"),
    ("whole.required", "at least one of whole, partial, ... must be specified", ""),
    ("custom.whole.identifier", "crm is an identifier", "customNames"),
    ("custom.whole.type(array)", "whole must be array: x", "customNames"),
    ("partial.tags.type(array)", "tags must be array: x", "values"),
    ("partial.type(object)", "partial must be object: x", "values"),
    ("custom.partial.tags.type(array)", "tags must be array: x", "values"),
    ("custom.partial.size(cm).type(array)", "size(cm) must be array: x", "values"),
    ("custom.partial.type(object)", "partial must be object: x", "values"),
    ("custom.type(object)", "custom must be object: x", ""),
    ("type(object)", "user must be object: x", ""),
]


def expected(base: str, path: str) -> str:
    return f"{base}.{path}" if path else base


@pytest.mark.parametrize(
    ("key", "message", "path"), E1_KEYS, ids=[f"{k}|{m}" for k, m, _ in E1_KEYS]
)
def test_an_upsert_error_key_maps_to_its_input_path(key: str, message: str, path: str) -> None:
    errors = upsert_errors(UserOutcome({key: [message]}), "users.3", custom_names=CUSTOM_NAMES)
    assert [(e.path, e.message) for e in errors] == [(expected("users.3", path), message)]


@pytest.mark.parametrize(
    ("key", "message", "path"), E4_KEYS, ids=[f"{k}|{m}" for k, m, _ in E4_KEYS]
)
def test_a_delete_error_key_maps_to_its_input_path(key: str, message: str, path: str) -> None:
    errors = delete_errors(UserOutcome({key: [message]}), "users.4")
    assert [(e.path, e.message) for e in errors] == [(expected("users.4", path), message)]


def test_every_message_of_a_key_is_its_own_error() -> None:
    outcome = UserOutcome({"identifiers.required": ["a"], "insider_id.required": ["b", "c"]})
    assert [(e.path, e.message) for e in upsert_errors(outcome, "users.0")] == [
        ("users.0.key", "a"),
        ("users.0.key", "b"),
        ("users.0.key", "c"),
    ]


def test_a_request_that_failed_as_a_whole_names_the_item() -> None:
    errors = exception_errors(UpstreamUnavailable("the UCD refused the connection"), "users.2")
    assert [(e.path, e.message) for e in errors] == [("users.2", "the UCD refused the connection")]
    (other,) = exception_errors(RuntimeError("boom"), "users.5")
    assert (other.path, other.message) == ("users.5", "the UCD call for this item failed")


@pytest.mark.parametrize(
    ("key", "path", "rule"),
    [
        pytest.param(
            r"identifiers.*.regexp(^.+@.+\..+$)",
            ("identifiers", "*"),
            r"regexp(^.+@.+\..+$)",
            id="dots-in-the-rule",
        ),
        pytest.param(
            "attributes.custom.a.b.type(string)",
            ("attributes", "custom", "a", "b"),
            "type(string)",
            id="dots-in-the-name",
        ),
        pytest.param(
            "attributes.custom.size(cm).type(string)",
            ("attributes", "custom", "size(cm)"),
            "type(string)",
            id="parentheses-in-the-name",
        ),
        pytest.param(
            "attributes.custom.v1.2(beta).type(supported)",
            ("attributes", "custom", "v1", "2(beta)"),
            "type(supported)",
            id="dots-and-parentheses-in-the-name",
        ),
        pytest.param(
            "attributes.custom.a(b.type(string)",
            ("attributes", "custom", "a(b"),
            "type(string)",
            id="unbalanced-parenthesis-in-the-name",
        ),
        pytest.param(
            "custom.partial.f(x).g.type(array)",
            ("custom", "partial", "f(x)", "g"),
            "type(array)",
            id="a-rule-in-the-name",
        ),
        pytest.param("whole.identifier", ("whole",), "identifier", id="bare-rule"),
        pytest.param("type(object)", (), "type(object)", id="rule-only"),
    ],
)
def test_error_keys_split_into_path_and_rule(key: str, path: tuple[str, ...], rule: str) -> None:
    assert ErrorKey.parse(key) == ErrorKey(path, rule)


# --- the tables hold the local UCD's real keys ------------------------------------------------

#: E1 users the UCD refuses, each with every key the local UCD answers for it (§3.1.3).
REFUSED_UPSERTS: list[tuple[Any, set[str]]] = [
    (
        {"identifiers": {"email": "x"}, "attributes": {"name": "a"}},
        {r"identifiers.*.regexp(^.+@.+\..+$)"},
    ),
    (
        {"identifiers": {"phone_number": "12345"}, "attributes": {"name": "a"}},
        {r"identifiers.*.regexp(^\+[1-9]\d{6,14}$)"},
    ),
    ({"identifiers": {"uuid": 1}, "attributes": {"name": "a"}}, {"identifiers.*.type(string)"}),
    (
        {"identifiers": {"fax": "1"}, "attributes": {"name": "a"}},
        {"identifiers.*.in(defaults_column)"},
    ),
    (
        {"identifiers": {"custom": {"": "v"}}, "attributes": {"name": "a"}},
        {"identifiers.custom.*.length(1,128)"},
    ),
    (
        {"identifiers": {"custom": "x"}, "attributes": {"name": "a"}},
        {"identifiers.custom.type(object)"},
    ),
    ({"attributes": {"name": "a"}}, {"identifiers.required", "insider_id.required"}),
    ({"insider_id": 5, "attributes": {"name": "a"}}, {"insider_id.type(string)"}),
    (
        {
            "identifiers": {"uuid": "u"},
            "attributes": {
                "email": "bad",
                "gdpr_optin": "yes",
                "lo": 1,
                "list_id": "x",
                "custom": {"vip": {"a": 1}, "": 1},
            },
        },
        {
            r"attributes.email.regexp(^.+@.+\..+$)",
            "attributes.gdpr_optin.type(boolean)",
            "attributes.lo.type(string)",
            "attributes.list_id.type(number_array)",
            "attributes.custom.vip.type(supported)",
            "attributes.custom.*.length(1,128)",
        },
    ),
    (
        {
            "identifiers": {"uuid": "u"},
            "attributes": {"custom": {"size(cm)": {"a": 1}, "v1.2(beta)": [{}], "a(b": {}}},
        },
        {
            "attributes.custom.size(cm).type(supported)",
            "attributes.custom.v1.2(beta).type(supported)",
            "attributes.custom.a(b.type(supported)",
        },
    ),
    (
        {"identifiers": {"uuid": "u"}, "attributes": {"custom": "x"}},
        {"attributes.custom.type(object)"},
    ),
    ({"identifiers": {"uuid": "u"}, "attributes": {}}, {"attributes.min(1)"}),
    (
        {
            "identifiers": {"uuid": "u"},
            "events": [
                {"event_name": "Bad", "timestamp": T},
                {"timestamp": T},
                {"event_name": "x", "timestamp": "yesterday"},
                {"event_name": "purchase", "timestamp": T},
                {
                    "event_name": "x",
                    "timestamp": T,
                    "event_params": {"quantity": 1.5, "name": 3, "color": 1, "custom": {"": 1}},
                },
                {"event_name": "x", "timestamp": T, "event_params": {"custom": "x"}},
                {"event_name": "x", "timestamp": T, "event_params": "x"},
                "x",
            ],
        },
        {
            "events.0.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)",
            "events.1.event_name.required",
            "events.2.timestamp.type(date)",
            "events.3.event_params.*.required",
            "events.4.event_params.quantity.type(integer)",
            "events.4.event_params.name.type(string)",
            "events.4.event_params.color.type(string)",
            "events.4.event_params.custom.*.length(1,128)",
            "events.5.event_params.custom.type(object)",
            "events.6.event_params.type(object)",
            "events.7.type(object)",
        },
    ),
    ({"identifiers": {"uuid": "u"}, "events": "x"}, {"events.type(array)"}),
    ("x", {"type(object)"}),
]

#: E4 users the UCD refuses, each with every key the local UCD answers for it (§3.4.3).
REFUSED_DELETES: list[tuple[Any, set[str]]] = [
    ({"identifiers": {"uuid": "nobody"}, "whole": ["name"]}, {"identifiers.exists"}),
    ({"identifiers": {"email": "x"}, "whole": ["name"]}, {r"identifiers.*.regexp(^.+@.+\..+$)"}),
    ({"identifiers": {"uuid": "u"}, "whole": "x"}, {"whole.type(array)"}),
    ({"identifiers": {"uuid": "u"}}, {"whole.required"}),
    ({"identifiers": {"uuid": "u"}, "custom": {"whole": "x"}}, {"custom.whole.type(array)"}),
    ({"identifiers": {"uuid": "u"}, "partial": {"tags": "x"}}, {"partial.tags.type(array)"}),
    ({"identifiers": {"uuid": "u"}, "partial": "x"}, {"partial.type(object)"}),
    (
        {"identifiers": {"uuid": "u"}, "custom": {"partial": {"tags": "x"}}},
        {"custom.partial.tags.type(array)"},
    ),
    (
        {"identifiers": {"uuid": "u"}, "custom": {"partial": {"size(cm)": "x"}}},
        {"custom.partial.size(cm).type(array)"},
    ),
    ({"identifiers": {"uuid": "u"}, "custom": {"partial": "x"}}, {"custom.partial.type(object)"}),
    ({"identifiers": {"uuid": "u"}, "custom": "x"}, {"custom.type(object)"}),
    ("x", {"type(object)"}),
]


@pytest.mark.parametrize(
    ("path", "refused", "table"),
    [
        pytest.param(UPSERT_PATH, REFUSED_UPSERTS, E1_KEYS, id="upsert"),
        pytest.param(ATTRIBUTE_DELETE_PATH, REFUSED_DELETES, E4_KEYS, id="attribute-delete"),
    ],
)
async def test_the_tables_hold_every_key_the_local_ucd_answers(
    ucd: UcdClient,
    ucd_http: httpx.AsyncClient,
    path: str,
    refused: list[tuple[Any, set[str]]],
    table: list[tuple[str, str, str]],
) -> None:
    await put_users(ucd, {"identifiers": {"uuid": "u"}, "attributes": {"name": "A"}})
    users = [user for user, _ in refused]
    response = await ucd_http.post(path, json={"users": users}, headers=AUTH)
    outcomes = DataEnvelope.from_wire(response.json()).split(len(users))
    assert [set(outcome.errors) for outcome in outcomes] == [keys for _, keys in refused]
    known = {key for key, _, _ in table}
    answered = {key for outcome in outcomes for key in outcome.errors}
    assert answered <= known, answered - known


async def test_a_custom_name_with_parentheses_maps_to_its_input_index(gateway: Gateway) -> None:
    """Through the gateway and the local UCD: custom types fixed as string, then numbers
    sent; each refusal lands on the AttributesInput.custom item that carried the name."""
    odd = ["size(cm)", "v1.2(beta)", "a(b"]

    def item(value: object) -> dict[str, Any]:
        custom = [{"name": name, "value": value} for name in ["tier", *odd]]
        return {"key": {"uuid": "u"}, "attributes": {"custom": custom}}

    await seed(gateway, [item("s")])
    data = await gateway.ok(UPSERT, {"input": {"users": [item(1)]}})
    (result,) = data["upsertUsers"]["results"]
    assert [error["path"] for error in result["errors"]] == [
        f"users.0.attributes.custom.{index}" for index in range(4)
    ]
