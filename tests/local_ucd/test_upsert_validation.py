"""E1 validation: request-level errors (§3.1.2) and every per-user rule of §3.1.3."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

EMAIL = {"email": "ada@example.com"}
OK_ATTRIBUTES = {"name": "Ada"}
TS = "2025-01-10T21:35:20Z"
PURCHASE_PARAMS = {"event_group_id": "O1", "currency": "USD", "unit_sale_price": 9.5}
NAME_129 = "n" * 129
REQUIRED = "either insider_id or idenifiers must be specified"
#: The two keys of a user with no identity at all (§3.1.3 "required" pair).
NO_IDENTITY = {
    "users.0.identifiers.required": [REQUIRED],
    "users.0.insider_id.required": [REQUIRED],
}
EMAIL_RULE = r"regexp(^.+@.+\..+$)"
PHONE_RULE = r"regexp(^\+[1-9]\d{6,14}$)"
EVENT_NAME_RULE = "regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"
SUPPORTED = "must be string, number, boolean, string array or number array"

Upsert = Callable[..., Any]


def user(**fields: Any) -> dict[str, Any]:
    """A valid user, with ``fields`` replacing or adding keys (``None`` removes a key)."""
    base: dict[str, Any] = {"identifiers": EMAIL, "attributes": OK_ATTRIBUTES}
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"event_name": "page_view", "timestamp": TS}
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def failed(errors: dict[str, list[str]]) -> dict[str, Any]:
    return {"data": {"successful": {}, "fail": {"count": 1, "errors": errors}}}


# -- §3.1.2 --------------------------------------------------------------------------------

REQUEST_ERRORS = [
    pytest.param({}, "users must be defined", id="users-absent"),
    pytest.param({"users": None}, "users must be defined", id="users-null"),
    pytest.param({"users": {"a": 1}}, "users must be defined", id="users-object"),
    pytest.param({"users": "x"}, "users must be defined", id="users-string"),
    pytest.param(
        {"users": [user()] * 1001},
        "users must not contain more than 1000 items",
        id="users-1001",
    ),
    pytest.param(
        {"users": [user()], "skip_hook": "yes"}, "skip_hook must be boolean", id="skip_hook"
    ),
    pytest.param({"users": [user()], "append": 1}, "append must be boolean", id="append"),
    pytest.param(
        {"users": [user()], "not_append": "x"}, "not_append must be boolean", id="not_append"
    ),
    pytest.param(
        {"users": [user()], "error_callback_endpoint": "ftp://hooks.example.com/x"},
        "error_callback_endpoint must be an http or https URL",
        id="callback-ftp",
    ),
    pytest.param(
        {"users": [user()], "error_callback_endpoint": 5},
        "error_callback_endpoint must be an http or https URL",
        id="callback-number",
    ),
    pytest.param(
        {"users": [user()], "error_callback_endpoint": "hooks.example.com"},
        "error_callback_endpoint must be an http or https URL",
        id="callback-no-scheme",
    ),
    pytest.param(
        {"skip_hook": "yes", "error_callback_endpoint": 5},
        "users must be defined",
        id="users-checked-first",
    ),
    pytest.param(
        {"users": [user()], "not_append": 1, "error_callback_endpoint": 5},
        "not_append must be boolean",
        id="flags-before-callback",
    ),
]


@pytest.mark.parametrize(("body", "text"), REQUEST_ERRORS)
async def test_request_level_error(ucd: httpx.AsyncClient, body: dict[str, Any], text: str) -> None:
    response = await ucd.post("/api/user/v1/upsert", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": f"{text}: bad request"}


async def test_empty_users_answer_an_empty_envelope(upsert: Upsert) -> None:
    assert await upsert() == {"data": {"successful": {}, "fail": {}}}


async def test_valid_flags_and_callback_url_are_accepted(upsert: Upsert) -> None:
    result = await upsert(
        user(),
        skip_hook=True,
        append=False,
        not_append=True,
        error_callback_endpoint="https://hooks.example.com/ucd-errors",
    )
    assert result == {"data": {"successful": {"count": 1}, "fail": {}}}


async def test_a_thousand_users_are_accepted(upsert: Upsert) -> None:
    users = [{"identifiers": {"uuid": f"u-{i}"}, "attributes": {"age": i}} for i in range(1000)]
    assert await upsert(*users) == {"data": {"successful": {"count": 1000}, "fail": {}}}


# -- §3.1.3: one failing rule per case ------------------------------------------------------

PER_USER = [
    # identity
    pytest.param(5, {"users.0.type(object)": ["user must be object: 5"]}, id="user-number"),
    pytest.param("x", {"users.0.type(object)": ["user must be object: x"]}, id="user-string"),
    pytest.param(
        user(identifiers=None),
        NO_IDENTITY,
        id="no-identity",
    ),
    pytest.param(
        user(identifiers={}),
        NO_IDENTITY,
        id="identifiers-empty",
    ),
    pytest.param(
        user(
            identifiers={
                "email": " NULL ",
                "phone_number": "",
                "uuid": "undefined",
                "custom": {"c": "0"},
            }
        ),
        NO_IDENTITY,
        id="all-values-blocked",
    ),
    pytest.param(
        user(identifiers="x"),
        {"users.0.identifiers.type(object)": ["identifiers must be object: x"]},
        id="identifiers-string",
    ),
    pytest.param(
        user(identifiers={"email": "ada@example.com", "em": "x"}),
        {
            "users.0.identifiers.*.in(defaults_column)": [
                "key must be one of phone_number(pn), email(em) or uuid"
            ]
        },
        id="identifiers-unknown-key",
    ),
    pytest.param(
        user(identifiers={"uuid": 12345}),
        {"users.0.identifiers.*.type(string)": ["uuid must be string: 12345"]},
        id="uuid-number",
    ),
    pytest.param(
        user(identifiers={"email": True}),
        {"users.0.identifiers.*.type(string)": ["email must be string: true"]},
        id="email-boolean",
    ),
    pytest.param(
        user(identifiers={"phone_number": 905551112233}),
        {"users.0.identifiers.*.type(string)": ["phone_number must be string: 905551112233"]},
        id="phone-number-number",
    ),
    pytest.param(
        user(identifiers={"email": "sample"}),
        {f"users.0.identifiers.*.{EMAIL_RULE}": ["not a valid email address: sample"]},
        id="email-format",
    ),
    pytest.param(
        user(identifiers={"phone_number": "05551112233"}),
        {f"users.0.identifiers.*.{PHONE_RULE}": ["user has an invalid phone number: 05551112233"]},
        id="phone-format",
    ),
    pytest.param(
        user(identifiers={"email": "ada@example.com", "custom": "c-9"}),
        {"users.0.identifiers.custom.type(object)": ["custom must be object: c-9"]},
        id="identifiers-custom-string",
    ),
    pytest.param(
        user(identifiers={"custom": {"": "v"}}),
        {"users.0.identifiers.custom.*.length(1,128)": ["invalid custom name: "]},
        id="identifier-name-empty",
    ),
    pytest.param(
        user(identifiers={"custom": {NAME_129: "v"}}),
        {"users.0.identifiers.custom.*.length(1,128)": [f"invalid custom name: {NAME_129}"]},
        id="identifier-name-129",
    ),
    pytest.param(
        user(identifiers={"custom": {"crm_id": 9}}),
        {"users.0.identifiers.custom.*.type(string)": ["crm_id must be string: 9"]},
        id="identifier-value-number",
    ),
    pytest.param(
        user(identifiers=None, insider_id=5),
        {"users.0.insider_id.type(string)": ["insider_id must be string: 5"]},
        id="insider-id-number",
    ),
    pytest.param(
        user(identifiers=None, insider_id=""),
        {"users.0.insider_id.type(string)": ["insider_id must be string: "]},
        id="insider-id-empty",
    ),
    # attributes
    pytest.param(
        user(attributes=None),
        {"users.0.attributes.required": ["either attributes or events must be specified"]},
        id="no-attributes-no-events",
    ),
    pytest.param(
        user(attributes=None, events=[]),
        {"users.0.attributes.required": ["either attributes or events must be specified"]},
        id="no-attributes-empty-events",
    ),
    pytest.param(
        user(attributes="x"),
        {"users.0.attributes.type(object)": ["attributes must be object: x"]},
        id="attributes-string",
    ),
    pytest.param(
        user(attributes={}),
        {"users.0.attributes.min(1)": ["attributes must contain at least one attribute"]},
        id="attributes-empty",
    ),
    pytest.param(
        user(attributes={"custom": {}}),
        {"users.0.attributes.min(1)": ["attributes must contain at least one attribute"]},
        id="attributes-only-empty-custom",
    ),
    pytest.param(
        user(attributes={"age": "36"}),
        {"users.0.attributes.age.type(number)": ["age must be number: 36"]},
        id="age-string",
    ),
    pytest.param(
        user(attributes={"age": True}),
        {"users.0.attributes.age.type(number)": ["age must be number: true"]},
        id="age-boolean",
    ),
    pytest.param(
        user(attributes={"name": 5}),
        {"users.0.attributes.name.type(string)": ["name must be string: 5"]},
        id="name-number",
    ),
    pytest.param(
        user(attributes={"email_optin": "yes"}),
        {"users.0.attributes.email_optin.type(boolean)": ["email_optin must be boolean: yes"]},
        id="optin-string",
    ),
    pytest.param(
        user(attributes={"birthday": "1989-12-10"}),
        {"users.0.attributes.birthday.type(date)": ["birthday must be date: 1989-12-10"]},
        id="birthday-no-time",
    ),
    pytest.param(
        user(attributes={"birthday": "1989-12-10T00:00:00+03:00"}),
        {
            "users.0.attributes.birthday.type(date)": [
                "birthday must be date: 1989-12-10T00:00:00+03:00"
            ]
        },
        id="birthday-offset",
    ),
    pytest.param(
        user(attributes={"static_segment_id": ["a"]}),
        {
            "users.0.attributes.static_segment_id.type(number_array)": [
                'static_segment_id must be number_array: ["a"]'
            ]
        },
        id="segments-strings",
    ),
    pytest.param(
        user(attributes={"list_id": [True]}),
        {"users.0.attributes.list_id.type(number_array)": ["list_id must be number_array: [true]"]},
        id="alias-named-as-sent",
    ),
    pytest.param(
        user(attributes={"locale": 5}),
        {"users.0.attributes.locale.type(string)": ["locale must be string: 5"]},
        id="locale-number",
    ),
    pytest.param(
        user(attributes={"email": "nope"}),
        {f"users.0.attributes.email.{EMAIL_RULE}": ["not a valid email address: nope"]},
        id="email-attribute-format",
    ),
    pytest.param(
        user(attributes={"phone_number": "123"}),
        {
            f"users.0.attributes.phone_number.{PHONE_RULE}": [
                "user has an invalid phone number: 123"
            ]
        },
        id="phone-attribute-format",
    ),
    pytest.param(
        user(attributes={"uuid": 7}),
        {"users.0.attributes.uuid.type(string)": ["uuid must be string: 7"]},
        id="uuid-attribute-number",
    ),
    pytest.param(
        user(attributes={"custom": [1]}),
        {"users.0.attributes.custom.type(object)": ["custom must be object: [1]"]},
        id="attributes-custom-array",
    ),
    pytest.param(
        user(attributes={"custom": {"": 1}}),
        {"users.0.attributes.custom.*.length(1,128)": ["invalid custom name: "]},
        id="attribute-name-empty",
    ),
    pytest.param(
        user(attributes={"custom": {NAME_129: 1}}),
        {"users.0.attributes.custom.*.length(1,128)": [f"invalid custom name: {NAME_129}"]},
        id="attribute-name-129",
    ),
    pytest.param(
        user(attributes={"custom": {"prefs": {"a": 1}}}),
        {"users.0.attributes.custom.prefs.type(supported)": [f'prefs {SUPPORTED}: {{"a":1}}']},
        id="custom-object",
    ),
    pytest.param(
        user(attributes={"custom": {"grid": [[1]]}}),
        {"users.0.attributes.custom.grid.type(supported)": [f"grid {SUPPORTED}: [[1]]"]},
        id="custom-nested-array",
    ),
    pytest.param(
        user(attributes={"custom": {"mix": ["a", 1]}}),
        {"users.0.attributes.custom.mix.type(supported)": [f'mix {SUPPORTED}: ["a",1]']},
        id="custom-mixed-array",
    ),
    pytest.param(
        user(attributes={"custom": {"flags": [True, False]}}),
        {"users.0.attributes.custom.flags.type(supported)": [f"flags {SUPPORTED}: [true,false]"]},
        id="custom-boolean-array",
    ),
    # events
    pytest.param(
        user(events={"a": 1}),
        {"users.0.events.type(array)": ['events must be array: {"a":1}']},
        id="events-object",
    ),
    pytest.param(
        user(events=[5]),
        {"users.0.events.0.type(object)": ["event must be object: 5"]},
        id="event-number",
    ),
    pytest.param(
        user(events=[event(event_name=None)]),
        {"users.0.events.0.event_name.required": ["event_name is required"]},
        id="event-name-absent",
    ),
    pytest.param(
        user(events=[event(event_name=7)]),
        {"users.0.events.0.event_name.required": ["event_name is required"]},
        id="event-name-number",
    ),
    pytest.param(
        user(events=[event(event_name="homepageView")]),
        {f"users.0.events.0.event_name.*.{EVENT_NAME_RULE}": ["invalid event name: homepageView"]},
        id="event-name-upper-case",
    ),
    pytest.param(
        user(events=[event(event_name="_view")]),
        {f"users.0.events.0.event_name.*.{EVENT_NAME_RULE}": ["invalid event name: _view"]},
        id="event-name-leading-underscore",
    ),
    pytest.param(
        user(events=[event(event_name="view\n")]),
        {f"users.0.events.0.event_name.*.{EVENT_NAME_RULE}": ["invalid event name: view\n"]},
        id="event-name-trailing-newline",
    ),
    pytest.param(
        user(events=[event(timestamp=None)]),
        {"users.0.events.0.timestamp.required": ["timestamp is required"]},
        id="timestamp-absent",
    ),
    pytest.param(
        user(events=[event(timestamp="2025-01-10")]),
        {"users.0.events.0.timestamp.type(date)": ["timestamp must be date: 2025-01-10"]},
        id="timestamp-date-only",
    ),
    pytest.param(
        user(events=[event(timestamp=1736544920)]),
        {"users.0.events.0.timestamp.type(date)": ["timestamp must be date: 1736544920"]},
        id="timestamp-epoch",
    ),
    pytest.param(
        user(events=[event(timestamp="2025-02-30T00:00:00Z")]),
        {"users.0.events.0.timestamp.type(date)": ["timestamp must be date: 2025-02-30T00:00:00Z"]},
        id="timestamp-impossible-day",
    ),
    pytest.param(
        user(events=[event(event_params=[])]),
        {"users.0.events.0.event_params.type(object)": ["event_params must be object: []"]},
        id="event-params-array",
    ),
    pytest.param(
        user(events=[event(event_params={"quantity": 1.5})]),
        {"users.0.events.0.event_params.quantity.type(integer)": ["quantity must be integer: 1.5"]},
        id="quantity-fraction",
    ),
    pytest.param(
        user(events=[event(event_params={"taxonomy": "Phone"})]),
        {
            "users.0.events.0.event_params.taxonomy.type(string_array)": [
                "taxonomy must be string_array: Phone"
            ]
        },
        id="taxonomy-string",
    ),
    pytest.param(
        user(events=[event(event_params={"unit_price": "9"})]),
        {"users.0.events.0.event_params.unit_price.type(number)": ["unit_price must be number: 9"]},
        id="unit-price-string",
    ),
    pytest.param(
        user(events=[event(event_params={"currency": 5})]),
        {"users.0.events.0.event_params.currency.type(string)": ["currency must be string: 5"]},
        id="currency-number",
    ),
    pytest.param(
        user(events=[event(event_params={"source": True})]),
        {"users.0.events.0.event_params.source.type(string)": ["source must be string: true"]},
        id="source-boolean",
    ),
    pytest.param(
        user(events=[event(event_params={"custom": "x"})]),
        {"users.0.events.0.event_params.custom.type(object)": ["custom must be object: x"]},
        id="event-custom-string",
    ),
    pytest.param(
        user(events=[event(event_params={"custom": {"": 1}})]),
        {"users.0.events.0.event_params.custom.*.length(1,128)": ["invalid custom name: "]},
        id="event-custom-name-empty",
    ),
    pytest.param(
        user(events=[event(custom=[1])]),
        {"users.0.events.0.custom.type(object)": ["custom must be object: [1]"]},
        id="event-level-custom-array",
    ),
    pytest.param(
        user(
            events=[
                event(
                    event_name="cart_page_view",
                    event_params={"currency": "USD", "unit_sale_price": None},
                )
            ]
        ),
        {
            "users.0.events.0.event_params.*.required": [
                "event_group_id parameter is required on cart_page_view event",
                "unit_sale_price parameter is required on cart_page_view event",
            ]
        },
        id="cart-page-view-required",
    ),
    pytest.param(
        user(events=[event(event_name="purchase")]),
        {
            "users.0.events.0.event_params.*.required": [
                "event_group_id parameter is required on purchase event",
                "currency parameter is required on purchase event",
                "unit_sale_price parameter is required on purchase event",
            ]
        },
        id="purchase-without-params",
    ),
    # lookup
    pytest.param(
        user(identifiers=None, insider_id="3b9a6c1e-8f3d-4c1a-9e57-2d8f0b6a4c11"),
        {"users.0.insider_id.exists": ["no such user for this insider_id"]},
        id="insider-id-unknown",
    ),
]


@pytest.mark.parametrize(("raw_user", "errors"), PER_USER)
async def test_per_user_rule(upsert: Upsert, raw_user: Any, errors: dict[str, list[str]]) -> None:
    assert await upsert(raw_user) == failed(errors)


ACCEPTED = [
    pytest.param(user(identifiers={"email": "ada@example.com", "custom": None}), id="custom-null"),
    pytest.param(
        user(identifiers={"email": "ada@example.com", "phone_number": None}), id="identifier-null"
    ),
    pytest.param(
        user(attributes={"unknown_key": {"x": 1}, "name": "A"}), id="unknown-attribute-ignored"
    ),
    pytest.param(user(attributes={"age": None}), id="only-null-attribute"),
    pytest.param(user(attributes={"lo": "tr_TR", "locale": 5}), id="alias-ignored-with-canonical"),
    pytest.param(user(attributes={"email": "undefined"}), id="blocked-email-attribute-ignored"),
    pytest.param(
        user(attributes={"age": 36.0, "static_segment_id": []}), id="float-age-empty-array"
    ),
    pytest.param(
        user(attributes=None, events=[event(event_params={"quantity": 2.0})]),
        id="integral-float-quantity",
    ),
    pytest.param(
        user(
            attributes=None, events=[event(event_name="purchase", event_params={**PURCHASE_PARAMS})]
        ),
        id="purchase-without-quantity",
    ),
    pytest.param(
        user(attributes=None, events=[event(timestamp="2025-01-11T00:35:20.123456789+03:00")]),
        id="offset-and-nanoseconds",
    ),
    pytest.param(
        user(attributes=None, events=[event(event_params={"referrer": {"any": ["json", 1]}})]),
        id="untyped-default-param",
    ),
    pytest.param(
        user(object_attributes=[{"anything": True}], skip_hook=3), id="unknown-user-keys-ignored"
    ),
    pytest.param(user(identifiers={"custom": {"crm_id": "c-9"}}), id="custom-identifier-only"),
]


@pytest.mark.parametrize("raw_user", ACCEPTED)
async def test_accepted_user(upsert: Upsert, raw_user: Any) -> None:
    assert await upsert(raw_user) == {"data": {"successful": {"count": 1}, "fail": {}}}


# -- rules that need state -----------------------------------------------------------------


async def test_custom_attribute_name_cannot_be_an_identifier(upsert: Upsert) -> None:
    await upsert(user(attributes={"custom": {"tier": "gold"}}))
    result = await upsert(user(identifiers={"email": "b@example.com", "custom": {"tier": "t-1"}}))
    assert result == failed(
        {
            "users.0.identifiers.custom.*.type(identifier)": [
                "tier is a custom attribute, not an identifier"
            ]
        }
    )


async def test_custom_attribute_value_of_another_type_fails(upsert: Upsert) -> None:
    await upsert(user(attributes={"custom": {"tier": "gold", "score": 5, "tags": ["a"]}}))
    result = await upsert(user(attributes={"custom": {"tier": 5, "score": "high", "tags": [1]}}))
    assert result == failed(
        {
            "users.0.attributes.custom.tier.type(string)": ["tier must be string: 5"],
            "users.0.attributes.custom.score.type(number)": ["score must be number: high"],
            "users.0.attributes.custom.tags.type(string_array)": ["tags must be string_array: [1]"],
        }
    )


async def test_type_fixed_by_an_earlier_user_of_the_same_request(upsert: Upsert) -> None:
    result = await upsert(
        user(attributes={"custom": {"tier": "gold"}}),
        user(identifiers={"uuid": "u-2"}, attributes={"custom": {"tier": 1}}),
    )
    assert result == {
        "data": {
            "successful": {"count": 1},
            "fail": {
                "count": 1,
                "errors": {
                    "users.1.attributes.custom.tier.type(string)": ["tier must be string: 1"]
                },
            },
        }
    }


async def test_a_failed_user_fixes_no_type(upsert: Upsert) -> None:
    """The first user fails (bad email), so its custom value fixes nothing for the second."""
    result = await upsert(
        user(identifiers={"email": "bad"}, attributes={"custom": {"tier": "gold"}}),
        user(identifiers={"uuid": "u-2"}, attributes={"custom": {"tier": 1}}),
    )
    assert result["data"]["successful"] == {"count": 1}
    assert list(result["data"]["fail"]["errors"]) == [f"users.0.identifiers.*.{EMAIL_RULE}"]


async def test_custom_identifier_sent_as_attribute_must_be_a_string(upsert: Upsert) -> None:
    await upsert(user(identifiers={"custom": {"crm_id": "c-1"}}))
    result = await upsert(user(attributes={"custom": {"crm_id": 9}}))
    assert result == failed(
        {"users.0.attributes.custom.crm_id.type(string)": ["crm_id must be string: 9"]}
    )


async def test_user_level_flags_must_be_booleans(upsert: Upsert) -> None:
    result = await upsert(user(append="yes", not_append=0))
    assert result == failed(
        {
            "users.0.append.type(boolean)": ["append must be boolean: yes"],
            "users.0.not_append.type(boolean)": ["not_append must be boolean: 0"],
        }
    )


async def test_every_failure_of_a_user_is_reported_in_encounter_order(upsert: Upsert) -> None:
    raw = {
        "identifiers": {"email": "sample", "uuid": 1, "phone_number": 2},
        "attributes": {"age": "x", "custom": {"": 1, NAME_129: 2}},
        "events": [
            event(event_name="Bad", timestamp="yesterday"),
            5,
            event(event_name="purchase", event_params={"currency": "USD", "quantity": "one"}),
        ],
    }
    assert await upsert(raw) == failed(
        {
            f"users.0.identifiers.*.{EMAIL_RULE}": ["not a valid email address: sample"],
            "users.0.identifiers.*.type(string)": [
                "uuid must be string: 1",
                "phone_number must be string: 2",
            ],
            "users.0.attributes.age.type(number)": ["age must be number: x"],
            "users.0.attributes.custom.*.length(1,128)": [
                "invalid custom name: ",
                f"invalid custom name: {NAME_129}",
            ],
            f"users.0.events.0.event_name.*.{EVENT_NAME_RULE}": ["invalid event name: Bad"],
            "users.0.events.0.timestamp.type(date)": ["timestamp must be date: yesterday"],
            "users.0.events.1.type(object)": ["event must be object: 5"],
            "users.0.events.2.event_params.quantity.type(integer)": [
                "quantity must be integer: one"
            ],
            "users.0.events.2.event_params.*.required": [
                "event_group_id parameter is required on purchase event",
                "unit_sale_price parameter is required on purchase event",
            ],
        }
    )


async def test_structurally_invalid_input_skips_dependent_checks(upsert: Upsert) -> None:
    """A non-object event_params skips the purchase's required-parameter check."""
    raw = user(identifiers=[1], events=[event(event_name="purchase", event_params="x")])
    assert await upsert(raw) == failed(
        {
            "users.0.identifiers.type(object)": ["identifiers must be object: [1]"],
            "users.0.events.0.event_params.type(object)": ["event_params must be object: x"],
        }
    )


async def test_errors_use_request_positions(upsert: Upsert) -> None:
    good = user()
    result = await upsert(good, good, user(events=[event(), event(timestamp="x")]))
    assert result == {
        "data": {
            "successful": {"count": 2},
            "fail": {
                "count": 1,
                "errors": {"users.2.events.1.timestamp.type(date)": ["timestamp must be date: x"]},
            },
        }
    }


# -- §3.1.5 examples ------------------------------------------------------------------------


async def test_envelope_two_successes(upsert: Upsert) -> None:
    result = await upsert(user(), user(identifiers={"uuid": "u-2"}))
    assert result == {"data": {"successful": {"count": 2}, "fail": {}}}


async def test_envelope_one_success_one_failure(ucd: httpx.AsyncClient) -> None:
    response = await ucd.post(
        "/api/user/v1/upsert", json={"users": [user(), user(identifiers={"email": "sample"})]}
    )
    # Inside JSON text the key's backslash is escaped (§3.1.5).
    assert '"users.1.identifiers.*.regexp(^.+@.+\\\\..+$)"' in response.text
    assert response.json() == {
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
    }


async def test_envelope_no_success(ucd: httpx.AsyncClient) -> None:
    body = {
        "users": [
            {
                "events": [
                    {
                        "event_name": "purchase",
                        "timestamp": TS,
                        "event_params": {"currency": "USD"},
                    },
                ]
            }
        ]
    }
    response = await ucd.post("/api/user/v1/upsert", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "successful": {},
            "fail": {
                "count": 1,
                "errors": {
                    "users.0.events.0.event_params.*.required": [
                        "event_group_id parameter is required on purchase event",
                        "unit_sale_price parameter is required on purchase event",
                    ],
                    "users.0.identifiers.required": [REQUIRED],
                    "users.0.insider_id.required": [REQUIRED],
                },
            },
        }
    }
