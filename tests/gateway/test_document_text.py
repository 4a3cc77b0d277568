"""A document's text checked before parsing (gateway/document_text.py): refusals are the
parser's own, only sooner, and a text too short to break a limit is not scanned."""

from __future__ import annotations

import pytest
from graphql import GraphQLSyntaxError, parse
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.document_text import CHARS_PER_TOKEN, check_text


def _refusal(text: str, max_tokens: int) -> GraphQLSyntaxError:
    with pytest.raises(GraphQLSyntaxError) as refused:
        check_text(text, max_tokens=max_tokens)
    return refused.value


def test_too_many_tokens_get_the_parsers_own_error() -> None:
    text = "{ a b c d e f }"
    with pytest.raises(GraphQLSyntaxError) as parsed:
        parse(text, max_tokens=4)
    assert _refusal(text, 4).formatted == parsed.value.formatted


def test_a_text_longer_than_its_tokens_allow_is_refused() -> None:
    text = '{ a(s: "' + "x" * 5 * CHARS_PER_TOKEN + '") }'
    assert "is longer than" in _refusal(text, 5).message


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet='{}()[]:!$@.,# \n"abc123-=', max_size=60),
    st.integers(min_value=1, max_value=60),
)
def test_a_text_of_at_most_max_tokens_characters_never_has_too_many(
    text: str, max_tokens: int
) -> None:
    """Why such a text is not scanned: every token (comments too, as the parser counts
    them) is at least one character, so the parser's own count stays within the limit."""
    if len(text) > max_tokens:
        return
    check_text(text, max_tokens=max_tokens)  # returns at once
    message = ""
    try:
        parse(text, max_tokens=max_tokens)
    except GraphQLSyntaxError as error:  # a syntax error, never the token limit
        message = error.message
    assert "tokens" not in message
