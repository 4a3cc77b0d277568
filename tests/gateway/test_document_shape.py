"""A document's shape (gateway/document_shape.py) and the validation cache's use of it
(gateway/limits.py): documents that differ in their aliases and argument strings are
validated once per shape, and every answer is the one full validation gives."""

from __future__ import annotations

import json

from graphql import ASTValidationRule, GraphQLError, parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.schema import build_schema
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.document_limits import DocumentLimits
from gateway.document_shape import shape_of
from gateway.limits import RequestGuards, ValidationCache, schema_extensions
from gateway.settings import Settings

SCHEMA = graphql_core_schema(build_schema())
LIMITS = DocumentLimits(max_fields=200, max_query_depth=10, max_aliases=30, max_directives=50)


def _rules() -> tuple[type[ASTValidationRule], ...]:
    """The rules a request is validated with (the default settings)."""
    (guards,) = schema_extensions(Settings(_env_file=None))  # type: ignore[call-arg]
    assert isinstance(guards, RequestGuards)
    return guards._rules


RULES = _rules()


def _key(text: str) -> object:
    shape = shape_of(parse(text))
    assert shape is not None
    return shape.key


def _answer(errors: list[GraphQLError]) -> str:
    """Everything an answer shows of the errors, to compare byte for byte."""
    return json.dumps([error.formatted for error in errors], sort_keys=True)


# --- the shape ------------------------------------------------------------------------


def test_aliases_and_argument_strings_are_left_out_of_the_shape() -> None:
    one = '{ a: user(key: {uuid: "u-1"}) { name } }'
    assert _key(one) == _key('{ bb: user(key: {uuid: "another user"}) { name } }')
    assert _key(one) == _key('{ a: user(key: {uuid: """block"""}) { name } }')


def test_everything_else_is_in_the_shape() -> None:
    one = '{ a: user(key: {uuid: "u-1"}) { name } }'
    for other in (
        '{ user(key: {uuid: "u-1"}) { name } }',  # no alias
        '{ a: user(key: {email: "u-1"}) { name } }',  # another input field
        '{ a: user(key: {uuid: "u-1"}) { email } }',  # another field
        '{ a: user(key: {uuid: "u-1"}, fresh: true) { name } }',  # another argument
        "{ a: user(key: {uuid: 1}) { name } }",  # another kind of value
        '{ a: user(key: {uuid: "u-1"}) { name @skip(if: false) } }',  # a directive
        'query Q { a: user(key: {uuid: "u-1"}) { name } }',  # a name
    ):
        assert _key(other) != _key(one), other


def test_fields_sharing_a_response_name_keep_their_strings_and_their_names_meet() -> None:
    # Compared by OverlappingFieldsCanBeMerged: their strings decide, so they are kept.
    same = '{ a: user(key: {uuid: "1"}) { name } a: user(key: {uuid: "1"}) { name } }'
    differ = '{ a: user(key: {uuid: "1"}) { name } a: user(key: {uuid: "2"}) { name } }'
    assert _key(same) != _key(differ)
    shape = shape_of(parse(same))
    assert shape is not None
    assert shape.erased == ()
    # Cut alike, but only the second one's fields share a response name.
    assert _key("{ x: __typename catalog { events { name } } }") != _key(
        "{ catalog: __typename catalog { events { name } } }"
    )


def test_strings_outside_field_arguments_are_kept() -> None:
    one = 'query($u: String = "a") { user(key: {uuid: $u}) { name @include(if: true) } }'
    shape = shape_of(parse(one))
    assert shape is not None
    assert shape.erased == ()
    assert _key(one) != _key(one.replace('"a"', '"b"'))


# --- the validation cache by shape -------------------------------------------------------


def test_a_new_document_of_a_valid_shape_is_valid_without_the_rules() -> None:
    cache = ValidationCache(limits=LIMITS)
    for i in range(5):
        text = f'{{ r{i}: user(key: {{uuid: "u-{i}"}}) {{ name email }} }}'
        assert cache.validate(SCHEMA, parse(text), text, RULES) == []
    assert (cache.misses, cache.shape_hits) == (5, 4)


def test_a_string_where_a_custom_scalar_goes_is_always_validated() -> None:
    cache = ValidationCache(limits=LIMITS)
    good = (
        '{ user(key: {uuid: "u"}) { events(names: ["a"], from: "2026-01-01T00:00:00Z") { name } } }'
    )
    bad = good.replace("2026-01-01T00:00:00Z", "not a date")
    assert cache.validate(SCHEMA, parse(good), good, RULES) == []
    (error,) = cache.validate(SCHEMA, parse(bad), bad, RULES)
    assert "DateTime" in error.message
    assert cache.shape_hits == 0


def test_an_invalid_document_is_not_remembered_by_its_shape() -> None:
    cache = ValidationCache(limits=LIMITS)
    first = '{ a: user(key: {uuid: "1"}) { name } a: catalog { events { name } } }'
    second = first.replace('"1"', '"2"')
    assert cache.validate(SCHEMA, parse(first), first, RULES)
    assert _answer(cache.validate(SCHEMA, parse(second), second, RULES)) == _answer(
        ValidationCache(limits=LIMITS).validate(SCHEMA, parse(second), second, RULES)
    )
    assert cache.shape_hits == 0


def test_shapes_are_bounded() -> None:
    cache = ValidationCache(maxsize=2, limits=LIMITS)
    texts = ["{ __typename }", "{ catalog { events { name } } }", '{ exportJob(id: "1") { id } }']
    for text in texts:
        cache.validate(SCHEMA, parse(text), text, RULES)
    assert len(cache._shapes) == 2
    # The oldest shape went: a new text of it is validated in full again.
    cache.validate(SCHEMA, parse("{  __typename }"), "{  __typename }", RULES)
    assert cache.shape_hits == 0


# --- random documents: the cache answers exactly what full validation answers ---------

#: A template's slots: an alias (or none) and a string value.
ALIAS, STRING = "\x00A", "\x00S"
#: Few of each, so fields often share a response name and strings repeat or differ.
_ALIASES = st.sampled_from(["", "a: ", "name: ", "user: "])
_STRINGS = st.sampled_from(['"2026-01-01T00:00:00Z"', '"not a date"', '""'])


@st.composite
def _user_fields(draw: st.DrawFn) -> str:
    fields = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["name", "attribute", "events", "events", "__typename"]))
        if kind == "attribute":
            fields.append(f"{ALIAS}attribute(name: {STRING}) {{ name value }}")
        elif kind == "events":
            fields.append(f"{ALIAS}events(names: [{STRING}], from: {STRING}) {{ name }}")
        else:
            fields.append(f"{ALIAS}{kind}")
    return " ".join(fields)


@st.composite
def _templates(draw: st.DrawFn) -> str:
    """A document with slots for its aliases and strings: one shape, many documents."""
    roots = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["user", "users", "exportJob", "fragment", "__typename", "pair"])
        )
        if kind == "user":
            roots.append(f"{ALIAS}user(key: {{uuid: {STRING}}}) {{ {draw(_user_fields())} }}")
        elif kind == "users":
            roots.append(
                f"{ALIAS}users(keys: [{{uuid: {STRING}}}, {{email: {STRING}}}]) "
                f"{{ {draw(_user_fields())} }}"
            )
        elif kind == "exportJob":
            roots.append(f"{ALIAS}exportJob(id: {STRING}) {{ id }}")
        elif kind == "pair":  # one response name twice: equal arguments or a conflict
            roots.append(
                f"p: user(key: {{uuid: {STRING}}}) {{ name }} "
                f"p: user(key: {{uuid: {STRING}}}) {{ name }}"
            )
        elif kind == "fragment":
            roots.append(f"{ALIAS}user(key: {{uuid: {STRING}}}) {{ ...F }}")
        else:
            roots.append(f"{ALIAS}__typename")
    text = "{ " + " ".join(roots) + " }"
    if "...F" in text:
        text += f" fragment F on User {{ {draw(_user_fields())} }}"
    return text


@st.composite
def _documents(draw: st.DrawFn) -> list[str]:
    """Documents of a few templates, their slots filled at random."""
    texts = []
    for template in draw(st.lists(_templates(), min_size=1, max_size=3)):
        for _ in range(draw(st.integers(1, 6))):
            pieces = template.split("\x00")
            text = pieces[0]
            for piece in pieces[1:]:
                fill = draw(_ALIASES if piece[0] == "A" else _STRINGS)
                text += fill + piece[1:]
            texts.append(text)
    return draw(st.permutations(texts))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_random_documents_get_what_full_validation_answers(texts: list[str]) -> None:
    cache = ValidationCache(limits=LIMITS)
    for text in texts:
        by_cache = cache.validate(SCHEMA, parse(text), text, RULES)
        in_full = ValidationCache(limits=LIMITS).validate(SCHEMA, parse(text), text, RULES)
        assert _answer(by_cache) == _answer(in_full), text


def test_documents_of_one_shape_are_validated_once() -> None:
    cache = ValidationCache(limits=LIMITS)
    for i in range(20):
        for text in (
            f'{{ u{i}: user(key: {{uuid: "{i}"}}) {{ attribute(name: "n{i}") {{ name }} }} }}',
            f'{{ users(keys: [{{uuid: "{i}"}}, {{email: "e"}}]) {{ ...F }} }} '
            "fragment F on User { name }",
        ):
            assert cache.validate(SCHEMA, parse(text), text, RULES) == []
    assert cache.shape_hits == 38
