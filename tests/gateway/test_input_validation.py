"""Input the UCD would refuse is refused before any UCD call, naming the input path."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError, parse

from gateway.api.one_of import refused_arguments
from gateway.api.schema import build_schema
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.api.validation import _param_type_fits
from gateway.error_pipeline import code_one_of_refusals
from gateway.ucd.names import PARAM_TYPES
from tests.gateway.conftest import UPSERT, CallLog, Gateway, seed


async def bad_input(
    gateway: Gateway, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    result = await gateway.execute(query, variables)
    assert result.errors is not None, result
    assert len(result.errors) == 1, result
    extensions = result.errors[0].extensions
    assert extensions is not None
    assert extensions["code"] == "BAD_USER_INPUT"
    return {"path": extensions.get("path"), "message": result.errors[0].message}


@pytest.mark.parametrize(
    ("key", "path", "message"),
    [
        pytest.param(
            {"email": "sample"}, "key.email", "not a valid email address: sample", id="email"
        ),
        pytest.param(
            {"phoneNumber": "05551112233"},
            "key.phoneNumber",
            "user has an invalid phone number: 05551112233",
            id="phone-no-plus",
        ),
        pytest.param({"phoneNumber": "+90555"}, "key.phoneNumber", None, id="phone-too-short"),
        pytest.param({}, "key", None, id="empty-key"),
        pytest.param(
            {"uuid": "anonymous", "email": "undefined"}, "key", None, id="only-blocked-values"
        ),
        pytest.param({"insiderId": ""}, "key.insiderId", None, id="empty-insider-id"),
        pytest.param(
            {"custom": [{"name": "", "value": "x"}]}, "key.custom.0.name", None, id="custom-name"
        ),
    ],
)
async def test_user_key_refused_before_any_ucd_call(
    gateway: Gateway, ucd_calls: CallLog, key: dict[str, Any], path: str, message: str | None
) -> None:
    error = await bad_input(gateway, "query($k: UserKey!) { user(key: $k) { name } }", {"k": key})
    assert error["path"] == path
    if message is not None:
        assert error["message"] == message
    assert ucd_calls.calls == []


async def test_an_email_that_trims_to_a_valid_one_is_accepted(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    await gateway.ok('{ user(key: {email: "  Ada@Example.COM\\t"}) { name } }')
    assert ucd_calls.profiles[0].body["identifiers"] == {"email": "ada@example.com"}


async def test_users_names_the_index_of_the_bad_key(gateway: Gateway, ucd_calls: CallLog) -> None:
    error = await bad_input(
        gateway, '{ users(keys: [{uuid: "a"}, {uuid: "b"}, {phoneNumber: "+1"}]) { name } }'
    )
    assert error["path"] == "keys.2.phoneNumber"
    assert ucd_calls.calls == []


@pytest.mark.parametrize(
    ("mutation", "path"),
    [
        pytest.param(
            'deleteIdentifier(identifier: {email: "a@b.co", uuid: "x"}) { ok }',
            "identifier",
            id="two-keys",
        ),
        pytest.param("deleteIdentifier(identifier: {}) { ok }", "identifier", id="no-key"),
        pytest.param(
            'updateIdentifier(old: {uuid: "x"}, new: {uuid: "y", email: "a@b.co"}) { ok }',
            "new",
            id="new",
        ),
    ],
)
async def test_one_of_violations_are_bad_user_input_with_the_argument(
    gateway: Gateway, ucd_calls: CallLog, mutation: str, path: str
) -> None:
    error = await bad_input(gateway, f"mutation {{ {mutation} }}")
    assert error["path"] == path
    assert ucd_calls.calls == []


async def test_one_of_violation_through_a_variable_names_the_argument(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    error = await bad_input(
        gateway,
        "mutation($o: IdentifierInput!, $n: IdentifierInput!) { updateIdentifier(old: $o, new: "
        "$n) { ok } }",
        {"o": {"uuid": "x"}, "n": {"uuid": "y", "phoneNumber": "+905551112233"}},
    )
    assert error["path"] == "new"
    assert ucd_calls.calls == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param('{email: "Ada@Example.com"}', '{email: " ada@example.COM"}', id="email"),
        pytest.param('{uuid: "u-1"}', '{uuid: "u-1"}', id="uuid"),
        pytest.param(
            '{custom: {name: "crm", value: "c"}}',
            '{custom: {name: "crm", value: "c"}}',
            id="custom",
        ),
    ],
)
async def test_an_identifier_changed_to_its_own_value_is_refused_before_the_ucd(
    gateway: Gateway, ucd_calls: CallLog, old: str, new: str
) -> None:
    """The UCD refuses equal values after email normalisation (§3.5.2 check 5)."""
    error = await bad_input(
        gateway, f"mutation {{ updateIdentifier(old: {old}, new: {new}) {{ ok }} }}"
    )
    assert error == {"path": "new", "message": "identifier values are the same"}
    assert ucd_calls.calls == []


@pytest.mark.parametrize(
    ("identifier", "path"),
    [
        pytest.param({"email": "nope"}, "identifier.email", id="email"),
        pytest.param({"phoneNumber": "12"}, "identifier.phoneNumber", id="phone"),
        pytest.param({"uuid": "null"}, "identifier.uuid", id="blocked"),
    ],
)
async def test_identifier_values_are_checked(
    gateway: Gateway, ucd_calls: CallLog, identifier: dict[str, Any], path: str
) -> None:
    error = await bad_input(
        gateway,
        "mutation($i: IdentifierInput!) { deleteIdentifier(identifier: $i) { ok } }",
        {"i": identifier},
    )
    assert error["path"] == path
    assert ucd_calls.calls == []


def event(name: str = "view", **extra: Any) -> dict[str, Any]:
    return {"name": name, "timestamp": "2025-01-10T21:35:20Z", **extra}


PURCHASE_OK = {"currency": "USD", "unitSalePrice": 1, "eventGroupId": "o"}


async def test_upsert_items_are_refused_one_by_one_with_paths(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    users: list[dict[str, Any]] = [
        {"key": {"uuid": f"u-{i}"}, "attributes": {"age": i}} for i in range(5)
    ]
    users[3]["key"] = {"email": "sample"}
    users[0]["events"] = [event(), event(), event("Homepage View")]
    users[1]["events"] = [event("purchase", currency="USD")]
    users[2]["attributes"] = {
        "phoneNumber": "123",
        "custom": [{"name": "ok", "value": 1}, {"name": "bad", "value": {"a": 1}}],
    }
    data = await gateway.ok(UPSERT, {"input": {"users": users}})
    payload = data["upsertUsers"]
    assert payload["successCount"] == 1
    assert payload["failureCount"] == 4
    errors = {r["index"]: r["errors"] for r in payload["results"] if not r["ok"]}
    assert errors[3] == [
        {"path": "users.3.key.email", "message": "not a valid email address: sample"}
    ]
    assert errors[0] == [
        {"path": "users.0.events.2.name", "message": "invalid event name: Homepage View"}
    ]
    assert errors[1] == [
        {
            "path": "users.1.events.0.eventGroupId",
            "message": "event_group_id parameter is required on purchase event",
        },
        {
            "path": "users.1.events.0.unitSalePrice",
            "message": "unit_sale_price parameter is required on purchase event",
        },
    ]
    assert [e["path"] for e in errors[2]] == [
        "users.2.attributes.phoneNumber",
        "users.2.attributes.custom.1.value",
    ]
    # Only the valid item went to the UCD.
    (call,) = ucd_calls.upserts
    assert call.body["users"] == [{"identifiers": {"uuid": "u-4"}, "attributes": {"age": 4}}]


async def test_required_purchase_params_may_come_through_params(gateway: Gateway) -> None:
    users = [
        {
            "key": {"uuid": "u"},
            "events": [
                event(
                    "purchase",
                    params={"currency": "USD", "event_group_id": "o", "unit_sale_price": 2},
                )
            ],
        }
    ]
    data = await gateway.ok(UPSERT, {"input": {"users": users}})
    assert data["upsertUsers"]["successCount"] == 1


@pytest.mark.parametrize(
    ("item", "path"),
    [
        pytest.param({"key": {"uuid": "u"}}, "users.0", id="nothing-to-write"),
        pytest.param({"key": {"uuid": "u"}, "attributes": {}}, "users.0", id="empty-attributes"),
        pytest.param(
            {"key": {"uuid": "u"}, "events": [event(params=[1])]},
            "users.0.events.0.params",
            id="params-not-object",
        ),
        pytest.param(
            {"key": {"uuid": "u"}, "events": [event(params={"quantity": 1.5})]},
            "users.0.events.0.params.quantity",
            id="quantity",
        ),
        pytest.param(
            {"key": {"uuid": "u"}, "events": [event(custom={"": 1})]},
            "users.0.events.0.custom.",
            id="custom-param-name",
        ),
        pytest.param(
            {"key": {"uuid": "u"}, "attributes": {"email": "x@y"}},
            "users.0.attributes.email",
            id="email-attribute",
        ),
    ],
)
async def test_single_item_problems(
    gateway: Gateway, ucd_calls: CallLog, item: dict[str, Any], path: str
) -> None:
    data = await gateway.ok(UPSERT, {"input": {"users": [item]}})
    (result,) = data["upsertUsers"]["results"]
    assert result["ok"] is False
    assert result["errors"][0]["path"] == path
    assert ucd_calls.calls == []


async def test_a_datetime_without_offset_is_refused_by_graphql(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    result = await gateway.execute(
        UPSERT,
        {
            "input": {
                "users": [
                    {
                        "key": {"uuid": "u"},
                        "events": [{"name": "v", "timestamp": "2025-01-10T21:35:20"}],
                    }
                ]
            }
        },
    )
    assert result.errors is not None
    assert "DateTime must be an RFC 3339 date-time" in result.errors[0].message
    assert ucd_calls.calls == []


async def test_delete_attributes_items_need_something_to_delete(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    data = await gateway.ok(
        """mutation { deleteAttributes(users: [
            {key: {uuid: "u"}}, {key: {email: "bad"}, names: ["x"]}
        ]) {
            successCount failureCount results { index ok errors { path } } } }"""
    )
    results = data["deleteAttributes"]["results"]
    assert results[0]["errors"] == [{"path": "users.0"}]
    assert results[1]["errors"] == [{"path": "users.1.key.email"}]
    assert ucd_calls.calls == []


@pytest.mark.parametrize(
    ("events", "path"),
    [
        pytest.param('events(names: ["v"], last: -1) { name }', "events.last", id="negative-last"),
        pytest.param(
            'events(names: ["v"], from: "2025-02-02T00:00:00Z", to: "2025-02-01T00:00:00Z") '
            "{ name }",
            "events.from",
            id="from-after-to",
        ),
        pytest.param(
            'events(names: ["v"], from: "2025-02-01T03:00:00+03:00", '
            'to: "2025-01-31T23:59:59Z") { name }',
            "events.from",
            id="from-after-to-by-offset",
        ),
    ],
)
async def test_bad_events_arguments_are_refused_before_any_ucd_call(
    gateway: Gateway, ucd_calls: CallLog, events: str, path: str
) -> None:
    """The UCD refuses start_date > end_date (§3.2.2); a negative last has no meaning."""
    error = await bad_input(gateway, f'{{ user(key: {{uuid: "u"}}) {{ name {events} }} }}')
    assert error["path"] == path
    error = await bad_input(gateway, f'{{ users(keys: [{{uuid: "u"}}]) {{ name {events} }} }}')
    assert error["path"] == path
    assert ucd_calls.calls == []


@pytest.mark.parametrize(
    "mutation",
    [
        pytest.param('deletePii(key: {uuid: "u"})', id="delete-pii"),
        pytest.param('deleteIdentifier(identifier: {email: "a@b.co"})', id="delete-identifier"),
        pytest.param(
            'updateIdentifier(old: {email: "a@b.co"}, new: {email: "c@d.co"})',
            id="update-identifier",
        ),
    ],
)
async def test_bad_events_arguments_under_a_payload_user_refuse_the_change(
    gateway: Gateway, ucd_calls: CallLog, mutation: str
) -> None:
    """The payload's read-back could not be served: nothing irreversible happens first."""
    await seed(gateway, [{"key": {"uuid": "u", "email": "a@b.co"}, "attributes": {"age": 1}}])
    ucd_calls.clear()
    error = await bad_input(
        gateway,
        f"mutation {{ {mutation} {{ ok "
        'user { age events(names: ["v"], last: -2) { name } } } }',
    )
    assert error["path"] == "events.last"
    assert ucd_calls.calls == []


async def test_a_to_near_the_start_of_time_is_a_window_not_an_internal_error(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    """to - 30 days would fall before year 1: from then starts at the earliest instant."""
    await seed(gateway, [{"key": {"uuid": "u"}, "attributes": {"age": 1}}])
    data = await gateway.ok(
        '{ user(key: {uuid: "u"}) { events(names: ["v"], to: "0001-01-05T00:00:00Z") { name } } }'
    )
    assert data == {"user": {"events": []}}
    (call,) = ucd_calls.profiles
    window = call.body["events"]
    assert window["start_date"] <= window["end_date"]


def test_a_generic_validation_code_gives_way_to_bad_user_input_with_the_path() -> None:
    """The app's limits extension codes validation errors first; @oneOf ones are re-coded."""
    schema = build_schema()
    document = parse(
        'mutation { deleteIdentifier(identifier: {uuid: "a", email: "b@c.de"}) { ok } }'
    )
    literal = next(
        node
        for node in document.definitions[0].selection_set.selections[0].arguments  # type: ignore[attr-defined]
    ).value
    error = GraphQLError(
        "OneOf Input Object 'IdentifierInput' must specify exactly one key.",
        nodes=[literal],
        extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
    )
    other = GraphQLError(
        "Cannot query field 'x'.", extensions={"code": "GRAPHQL_VALIDATION_FAILED"}
    )
    code_one_of_refusals(
        [error, other],
        lambda errors: refused_arguments(
            errors,
            schema=graphql_core_schema(schema),
            one_of_types=schema.one_of_types,
            document=document,
            variables={},
        ),
    )
    assert error.extensions == {"code": "BAD_USER_INPUT", "path": "identifier"}
    assert other.extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_users_with_more_keys_than_allowed_is_refused_before_any_ucd_call(
    gateway: Gateway, ucd_calls: CallLog
) -> None:
    """users(keys) costs a profile call per user: the number of keys has a ceiling."""
    limit = gateway.settings.max_user_keys
    keys = [{"uuid": f"u-{i}"} for i in range(limit + 1)]
    refused = await bad_input(
        gateway, "query($k: [UserKey!]!) { users(keys: $k) { name } }", {"k": keys}
    )
    assert refused == {
        "path": "keys",
        "message": f"keys must not contain more than {limit} keys (UCD_GATEWAY_MAX_USER_KEYS)",
    }
    assert ucd_calls.calls == []


#: A value of each §4.8.2 type that fits it, one that does not, per type name.
PARAM_SAMPLES = {
    "string": ("EUR", 1),
    "number": (1.5, True),
    "integer": (3.0, 3.5),
    "string_array": (["a", "b"], ["a", 1]),
}


@pytest.mark.parametrize(("kind", "samples"), PARAM_SAMPLES.items(), ids=list(PARAM_SAMPLES))
def test_each_parameter_type_is_checked_as_itself(kind: str, samples: tuple[Any, Any]) -> None:
    fits, misfits = samples
    assert _param_type_fits(kind, fits)
    assert not _param_type_fits(kind, misfits)


def test_every_typed_parameter_has_a_type_the_check_knows() -> None:
    assert set(PARAM_TYPES.values()) == set(PARAM_SAMPLES)


@pytest.mark.parametrize("kind", ["date", "number_array", "String", ""])
def test_a_type_the_check_does_not_know_fits_nothing(kind: str) -> None:
    """It used to be checked as string_array, so a list of strings passed."""
    assert not _param_type_fits(kind, ["a", "b"])
    assert not _param_type_fits(kind, "a")
