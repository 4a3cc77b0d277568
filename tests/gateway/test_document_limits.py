"""Document limits over HTTP: fields after fragment expansion, depth, aliases, directives
and fragment cycles, measured in one linear pass before validation
(gateway/document_limits.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from graphql import parse

from bench.document_limits import fragment_bomb
from gateway.document_limits import (
    DocumentLimits,
    full_introspection_query,
    introspection_depth,
    measure,
)
from tests.gateway.conftest import CallLog, GatewayHttp, app_gateway, graphql

#: A generous bound for one refusal on a shared 2-core machine; bench/document_limits.py
#: has the precise figures (well under a millisecond for the pass itself).
QUICK_SECONDS = 2.0

REFUSED = {"code": "GRAPHQL_VALIDATION_FAILED"}


@pytest.mark.parametrize("levels", [20, 24, 40], ids=lambda n: f"{n}-levels")
async def test_a_fragment_bomb_is_refused_quickly_by_the_fields_limit(
    gateway_http: GatewayHttp, ucd_calls: CallLog, levels: int
) -> None:
    started = time.perf_counter()
    error = await gateway_http.error(fragment_bomb(levels))
    elapsed = time.perf_counter() - started
    fields = 2**levels + 1  # the user field and its 2**levels names
    assert error["message"] == (
        f"the document selects {fields:,} fields after fragment expansion; "
        "the limit is 1000 (UCD_GATEWAY_MAX_FIELDS)"
    )
    assert error["extensions"] == REFUSED
    assert ucd_calls.calls == []
    assert elapsed < QUICK_SECONDS


async def test_healthz_answers_while_a_fragment_bomb_is_refused(
    gateway_http: GatewayHttp,
) -> None:
    """On main, a 24-level bomb held the event loop, /healthz included, for ~150 s."""
    started = time.perf_counter()
    refused, health = await asyncio.gather(
        gateway_http.error(fragment_bomb(24)), gateway_http.client.get("/healthz")
    )
    assert health.status_code == 200
    assert "UCD_GATEWAY_MAX_FIELDS" in refused["message"]
    assert time.perf_counter() - started < QUICK_SECONDS


async def test_cyclic_fragments_get_one_error(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    error = await gateway_http.error(
        "fragment A on User { name ...B } fragment B on User { ...C } "
        'fragment C on User { ...A } { user(key: {uuid: "x"}) { ...A } }'
    )
    assert error["message"] == (
        "fragment 'A' spreads itself (A -> B -> C -> A); fragment spreads must not form a cycle"
    )
    assert error["extensions"] == REFUSED
    assert ucd_calls.calls == []


async def test_more_directives_than_the_limit_get_one_error(gateway_http: GatewayHttp) -> None:
    """graphql-core alone answers 50 errors (one per repeated @skip)."""
    error = await gateway_http.error("{ __typename " + "@skip(if: false) " * 51 + "}")
    assert error["message"] == (
        "the document has 51 directives; the limit is 50 (UCD_GATEWAY_MAX_DIRECTIVES)"
    )
    assert error["extensions"] == REFUSED


async def test_the_limits_are_settings() -> None:
    async with app_gateway(max_fields=3, max_directives=2) as (client, _):
        within = await graphql(client, "{ a: __typename b: __typename c: __typename }")
        assert within["data"] == {"a": "Query", "b": "Query", "c": "Query"}
        assert "errors" not in within
        too_many = await graphql(
            client, "{ a: __typename b: __typename c: __typename d: __typename }"
        )
        skips = "{ __typename @skip(if: false) @include(if: true) @skip(if: false) }"
        too_many_directives = await graphql(client, skips)
    assert [e["message"] for e in too_many["errors"]] == [
        "the document selects 4 fields after fragment expansion; "
        "the limit is 3 (UCD_GATEWAY_MAX_FIELDS)"
    ]
    assert [e["message"] for e in too_many_directives["errors"]] == [
        "the document has 3 directives; the limit is 2 (UCD_GATEWAY_MAX_DIRECTIVES)"
    ]


async def test_eight_hundred_duplicate_fields_name_the_fields_limit(
    gateway_http: GatewayHttp,
) -> None:
    """graphql-core alone answers "Validation aborted." after ~80 ms of comparisons."""
    error = await gateway_http.error("{ " + "__typename " * 800 + "}")
    assert error["message"] == (
        "the document selects '__typename' 800 times in one selection set, 319,600 pairs "
        "to compare; the limit is 1000 (UCD_GATEWAY_MAX_FIELDS)"
    )
    assert error["extensions"] == REFUSED


async def test_fragments_spread_side_by_side_count_as_pairs(gateway_http: GatewayHttp) -> None:
    """graphql-core compares every two of them: 700 took it 1.3 s, then "Validation aborted.".
    300 stay within the token limit (5,000) and are still far over the pair count."""
    fragments = " ".join(f"fragment D{i} on Query {{ __typename }}" for i in range(300))
    spreads = " ".join(f"...D{i}" for i in range(300))
    error = await gateway_http.error(f"{fragments} {{ ... on Query {{ {spreads} }} }}")
    assert error["message"] == (
        "the document spreads 300 fragments in one selection set, 44,850 pairs to compare; "
        "the limit is 1000 (UCD_GATEWAY_MAX_FIELDS)"
    )
    assert error["extensions"] == REFUSED


async def test_a_deep_introspection_chain_is_refused(gateway_http: GatewayHttp) -> None:
    """strawberry's depth limiter skipped everything under __schema."""
    chain = "ofType { " * 25 + "name" + " }" * 25
    error = await gateway_http.error("{ __schema { types { " + chain + " } } }")
    assert error["message"] == (
        "'anonymous' exceeds maximum operation depth of 14 under introspection: it is 27 "
        "deep (UCD_GATEWAY_MAX_QUERY_DEPTH, at least 14 for introspection)"
    )
    assert error["extensions"] == REFUSED


async def test_the_full_introspection_query_still_runs(gateway_http: GatewayHttp) -> None:
    """GraphiQL's introspection query is 14 deep, deeper than the default depth limit (10)."""
    query = full_introspection_query()
    data = await gateway_http.ok(query)
    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_depth_counts_through_fragments() -> None:
    query = (
        'fragment E on Event { name } fragment U on User { events(names: ["x"]) { ...E } } '
        'query Deep { user(key: {uuid: "x"}) { ...U } }'
    )
    async with app_gateway(max_query_depth=1) as (client, _):
        body = await graphql(client, query)
    (error,) = body["errors"]
    assert error["message"] == (
        "'Deep' exceeds maximum operation depth of 1: it is 2 deep (UCD_GATEWAY_MAX_QUERY_DEPTH)"
    )
    assert error["extensions"] == REFUSED


async def test_fragments_used_several_times_cost_the_same_ucd_calls(
    gateway_http: GatewayHttp, ucd_calls: CallLog
) -> None:
    inline = '{ user(key: {uuid: "u-1"}) { insiderId name email name insiderId } }'
    with_fragments = (
        "fragment Id on User { insiderId } fragment Contact on User { ...Id name email } "
        '{ user(key: {uuid: "u-1"}) { ...Contact ...Id ...Contact name } }'
    )
    expected = await gateway_http.post(inline)
    inline_calls = list(ucd_calls.calls)
    ucd_calls.clear()
    assert await gateway_http.post(with_fragments) == expected
    assert ucd_calls.calls == inline_calls
    assert len(inline_calls) == 1


# --- the pass itself ------------------------------------------------------------------------


def test_the_full_introspection_query_is_fourteen_deep() -> None:
    assert introspection_depth() == 14


def test_aliases_count_once_per_expansion_as_strawberry_counted_them() -> None:
    size = measure(
        parse("fragment F on User { a: name b: email } { u: user { ...F ...F } v: user { ...F } }")
    )
    assert size.aliases == 2 + 3 * 2
    assert size.fields == 2 + 3 * 2


def test_a_fragment_no_operation_uses_still_counts() -> None:
    """graphql-core's rules walk every fragment, used or not."""
    text = fragment_bomb(12).replace('{ user(key: {uuid: "x"}) { ...F12 } }', "{ __typename }")
    assert measure(parse(text)).fields == 2**12 + 1


def test_a_chain_of_fragments_longer_than_the_stack_is_measured() -> None:
    """Iterative walks: 5,000 fragments spreading each other need no recursion."""
    chain = " ".join(f"fragment F{i} on User {{ name ...F{i - 1} }}" for i in range(1, 5000))
    size = measure(parse(f"fragment F0 on User {{ name }} {chain} {{ user {{ ...F4999 }} }}"))
    assert size.fields == 5001
    limits = DocumentLimits(
        max_fields=10_000, max_query_depth=10, max_aliases=50, max_directives=50
    )
    assert limits.refusal(size) is None


def test_the_depth_under_an_introspection_spread_keeps_its_kind() -> None:
    size = measure(
        parse(
            "fragment T on __Type { ofType { ofType { name } } } "
            'fragment Q on Query { __type(name: "User") { ...T } } { ...Q user { name } }'
        )
    )
    assert size.depths == (("anonymous", 1, 3),)
