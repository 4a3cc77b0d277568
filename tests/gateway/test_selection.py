"""Selection push-down, as a pure function of the operation: gateway.api.selection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    get_variable_values,
    parse,
)

from gateway.api.schema import build_schema
from gateway.api.selection import FieldScope, UserSelection, field_selected, user_selection
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.errors import BadUserInput
from gateway.reads.need import ProfileNeed
from gateway.ucd.names import ALL_ATTRIBUTES
from gateway.ucd.requests import UserRef
from tests.gateway.conftest import TYPED_READ_NAMES

SCHEMA = graphql_core_schema(build_schema())
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
DAY = 86_400


def select(query: str, variables: dict[str, Any] | None = None, *, index: int = 0) -> UserSelection:
    """The selection of the ``index``-th root field of ``query``, variables coerced."""
    document = parse(query)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    coerced = get_variable_values(SCHEMA, operation.variable_definitions or (), variables or {})
    assert not isinstance(coerced, list), coerced  # a list is graphql-core's error report
    node = operation.selection_set.selections[index]
    assert isinstance(node, FieldNode)
    return user_selection(FieldScope(SCHEMA, fragments, coerced.coerced, [node]), now=NOW)


def attrs(selection: UserSelection) -> Any:
    return selection.need.attributes


def test_typed_fields_ask_for_their_read_names() -> None:
    selection = select(
        """{ user(key: {email: "a@b.co"}) {
            insiderId email phoneNumber uuid name surname birthday gender age language
            country city locale emailOptin smsOptin whatsappOptin gdprOptin staticSegmentIds
        } }"""
    )
    assert attrs(selection) == TYPED_READ_NAMES
    assert selection.need.events == ()


def test_only_insider_id_asks_for_iid_alone() -> None:
    selection = select('{ user(key: {email: "a@b.co"}) { insiderId __typename } }')
    assert selection.need == ProfileNeed()
    body = selection.need.request(UserRef.of(email="a@b.co")).to_wire()
    assert body == {"identifiers": {"email": "a@b.co"}, "attributes": ["iid"]}


def test_fragments_inline_fragments_and_aliases_all_count() -> None:
    selection = select(
        """
        query { user(key: {uuid: "u"}) {
            ...Names
            ... on User { city }
            ... { country }
            a: attribute(name: "tier", custom: true) { value }
            b: attribute(name: "gdpr_optin") { value }
            c: attribute(name: "locale") { value }
        } }
        fragment Names on User { name ...More }
        fragment More on User { surname }
        """
    )
    assert attrs(selection) == frozenset(
        {"name", "surname", "city", "country", "c_tier", "gdpr", "lo"}
    )


def test_skip_and_include_follow_the_variables() -> None:
    query = """
    query($withCity: Boolean!, $skipName: Boolean!) { user(key: {uuid: "u"}) {
        city @include(if: $withCity)
        name @skip(if: $skipName)
        ... on User @include(if: $withCity) { country }
        ...F @skip(if: $skipName)
    } }
    fragment F on User { surname }
    """
    assert attrs(select(query, {"withCity": True, "skipName": False})) == frozenset(
        {"city", "name", "country", "surname"}
    )
    assert attrs(select(query, {"withCity": False, "skipName": True})) == frozenset()


def test_attributes_without_names_asks_for_everything() -> None:
    selection = select('{ user(key: {uuid: "u"}) { email attributes { name value } } }')
    assert attrs(selection) == ALL_ATTRIBUTES
    assert selection.need.request(UserRef.of(uuid="u")).to_wire()["attributes"] == "*"


def test_attributes_with_names_asks_for_those_names() -> None:
    selection = select(
        '{ user(key: {uuid: "u"}) { attributes(names: ["email_optin", "list_id"], customNames: '
        '["tier"]) { name } } }'
    )
    assert attrs(selection) == frozenset({"email_optin", "static_segment_id", "c_tier"})


def test_a_star_given_as_a_name_never_asks_for_everything() -> None:
    """The UCD reads "*" among names as every attribute (§3.2.3); no attribute is named "*"."""
    selection = select(
        '{ user(key: {uuid: "u"}) { attribute(name: "*") { value } '
        'attributes(names: ["*", "city"]) { name } } }'
    )
    assert attrs(selection) == frozenset({"city"})
    need = select('{ user(key: {uuid: "u"}) { attribute(name: "*") { value } } }').need
    body = need.request(UserRef.of(uuid="u")).to_wire()
    assert body["attributes"] == ["iid"]


def test_attributes_names_from_variables() -> None:
    selection = select(
        'query($n: [String!]) { user(key: {uuid: "u"}) { attributes(names: $n) { name } } }',
        {"n": ["city"]},
    )
    assert attrs(selection) == frozenset({"city"})


def test_events_ask_for_names_params_and_the_default_window() -> None:
    selection = select(
        """{ user(key: {uuid: "u"}) { events(names: ["purchase", "cart_page_view"]) {
            name timestamp source productId productName taxonomy currency unitPrice
            unitSalePrice quantity eventGroupId url
            gift: param(name: "gift_wrap", custom: true) ref: param(name: "referrer")
        } } }"""
    )
    params = frozenset(
        {
            "product_id",
            "name",
            "taxonomy",
            "currency",
            "unit_price",
            "unit_sale_price",
            "quantity",
            "event_group_id",
            "url",
            "c_gift_wrap",
            "referrer",
        }
    )
    assert selection.need.events == (("cart_page_view", params), ("purchase", params))
    assert selection.need.window == (NOW_S - 30 * DAY, NOW_S)
    assert attrs(selection) == frozenset()
    body = selection.need.request(UserRef.of(uuid="u")).to_wire()
    assert "attributes" not in body
    assert body["events"]["wanted"][1] == {"event_name": "purchase", "params": sorted(params)}


def test_event_fields_that_come_with_every_event_ask_for_no_params() -> None:
    selection = select(
        '{ user(key: {uuid: "u"}) { events(names: ["view"]) { name timestamp source } } }'
    )
    assert selection.need.events == (("view", frozenset()),)


def test_event_window_from_variables_is_floored_to_seconds() -> None:
    selection = select(
        'query($f: DateTime, $t: DateTime) { user(key: {uuid: "u"}) { events(names: ["view"], '
        "from: $f, to: $t) { name } } }",
        {"f": "2025-01-01T00:00:00.900Z", "t": "2025-01-02T03:00:00+03:00"},
    )
    start = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    assert selection.need.window == (start, start + DAY)


def test_from_alone_runs_to_now_and_to_alone_starts_30_days_before() -> None:
    only_from = select(
        '{ user(key: {uuid: "u"}) { events(names: ["v"], from: "2025-02-01T00:00:00Z") { name } } }'
    )
    assert only_from.need.window == (int(datetime(2025, 2, 1, tzinfo=UTC).timestamp()), NOW_S)
    to = datetime(2025, 1, 31, tzinfo=UTC)
    only_to = select(
        '{ user(key: {uuid: "u"}) { events(names: ["v"], to: "2025-01-31T00:00:00Z") { name } } }'
    )
    assert only_to.need.window == (int((to - timedelta(days=30)).timestamp()), int(to.timestamp()))


def test_two_event_selections_merge_into_the_hull_with_params_per_name() -> None:
    selection = select(
        """{ user(key: {uuid: "u"}) {
            recent: events(names: ["purchase"]) { productId }
            old: events(
                names: ["purchase", "view"]
                from: "2024-01-01T00:00:00Z"
                to: "2024-02-01T00:00:00Z"
            ) { url }
        } }"""
    )
    assert dict(selection.need.events) == {
        "purchase": frozenset({"product_id", "url"}),
        "view": frozenset({"url"}),
    }
    assert selection.need.window == (int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()), NOW_S)


@pytest.mark.parametrize(
    "events",
    [
        pytest.param("events(names: []) { name }", id="no-names"),
        pytest.param('events(names: ["v"], last: 0) { name }', id="last-zero"),
    ],
)
def test_event_selections_that_can_match_nothing_ask_for_nothing(events: str) -> None:
    selection = select(f'{{ user(key: {{uuid: "u"}}) {{ {events} }} }}')
    assert selection.need.events == ()


@pytest.mark.parametrize(
    ("events", "path"),
    [
        pytest.param(
            'events(names: ["v"], from: "2025-02-02T00:00:00Z", to: "2025-02-01T00:00:00Z") { '
            "name }",
            "events.from",
            id="from-after-to",
        ),
        pytest.param('events(names: ["v"], last: -1) { name }', "events.last", id="negative-last"),
        pytest.param(
            "events(names: [], last: -1) @skip(if: false) { name }", "events.last", id="no-names"
        ),
    ],
)
def test_event_arguments_no_call_can_serve_are_refused(events: str, path: str) -> None:
    with pytest.raises(BadUserInput) as refused:
        select(f'{{ user(key: {{uuid: "u"}}) {{ {events} }} }}')
    assert refused.value.extensions == {"code": "BAD_USER_INPUT", "path": path}


def test_a_skipped_events_selection_is_not_checked() -> None:
    selection = select(
        '{ user(key: {uuid: "u"}) { name events(names: ["v"], last: -1) @skip(if: true) '
        "{ name } } }"
    )
    assert selection.need == ProfileNeed(attributes=frozenset({"name"}))


def test_event_fragments_and_directives_count_in_the_params() -> None:
    selection = select(
        """query($p: String!, $no: Boolean!) { user(key: {uuid: "u"}) {
            events(names: ["purchase"]) {
                ... on Event { productId }
                ...More
                currency @include(if: $no)
                param(name: $p)
            }
        } }
        fragment More on Event { q: quantity gift: param(name: "gift", custom: true) }""",
        {"p": "referrer", "no": False},
    )
    assert selection.need.events == (
        ("purchase", frozenset({"product_id", "quantity", "c_gift", "referrer"})),
    )


def test_identifiers_add_the_custom_names_of_the_key() -> None:
    selection = select('{ user(key: {uuid: "u"}) { identifiers { type name value } } }')
    assert selection.identifiers
    ref = UserRef.of(uuid="u", custom=[("crm_id", "c-9")])
    assert selection.need_for(ref).attributes == frozenset(
        {"email", "phone_number", "uuid", "c_crm_id"}
    )
    assert selection.need_for(UserRef.of(uuid="u")).attributes == frozenset(
        {"email", "phone_number", "uuid"}
    )


def test_several_nodes_of_one_response_key_merge() -> None:
    document = parse('{ user(key: {uuid: "u"}) { email } user(key: {uuid: "u"}) { city } }')
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    nodes = [n for n in operation.selection_set.selections if isinstance(n, FieldNode)]
    selection = user_selection(FieldScope(SCHEMA, {}, {}, nodes), now=NOW)
    assert attrs(selection) == frozenset({"email", "city"})


def test_field_selected_sees_through_fragments_and_skip() -> None:
    document = parse(
        """mutation($s: Boolean!) {
            a: deletePii(key: {uuid: "u"}) { ok ...P }
            b: deletePii(key: {uuid: "u"}) { ok user @skip(if: $s) { email } }
        }
        fragment P on DeletePiiPayload { user { email } }"""
    )
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    a, b = (n for n in operation.selection_set.selections if isinstance(n, FieldNode))

    def selected(node: FieldNode, skip: bool) -> bool:
        return field_selected(
            FieldScope(SCHEMA, fragments, {"s": skip}, [node]),
            type_name="DeletePiiPayload",
            field_name="user",
        )

    assert selected(a, skip=True)
    assert selected(b, skip=False)
    assert not selected(b, skip=True)
