r"""A GraphQL document's text, refused before graphql-core parses it when it is too long.

graphql-core's lexer reads one character at a time in Python, so ``parse`` costs time in
the text's length, not only in its tokens, and its ``max_tokens`` stops it only after it
has read that many tokens (10,000 ~ 50-80 ms on our 2-core machine). Its error then
computes the line and column of the token that crossed the limit by scanning the text
for line breaks, the whole text when it is one line (5 MB: ~76 ms). A body of up to
``UCD_GATEWAY_MAX_BODY_BYTES`` (5 MB) of aliases, spaces or one long string took
100-330 ms before it was refused. ``check_text`` refuses such a text in a few ms:

1. **tokens**: the text is counted with one regular expression per token (``_TOKEN``:
   the lexical grammar of the GraphQL spec, "Source Text", counting comments as graphql-core's
   ``max_tokens`` does), stopping one past the limit. Over it, the text gets
   graphql-core's own error, same message and position, so the answer is the parser's,
   only sooner;
2. **length**: a text longer than ``max_tokens × CHARS_PER_TOKEN`` (80,000 characters
   by default) is refused without reading the rest: the tokens are counted in that much
   at most, and a few long tokens (a 5 MB string, 5 MB of spaces) cost the lexer as much
   as many short ones. The bound is generous: a real operation averages 4-8 characters
   per token (graphql-core's full introspection query: ~5), and 80,000 characters is
   some 10 times the largest operation we have seen.

The count never exceeds graphql-core's for a valid document: each token of the grammar
is one match. Where the regular expression finds no token (a character GraphQL does not
allow, an unterminated string), counting stops and graphql-core decides, as before. A
document with more tokens than the limit and a syntax error besides is refused for its
tokens, the first thing wrong with it that we look at.

    >>> check_text('{ user(key: {uuid: "u-1"}) { name } }', max_tokens=15)
    >>> check_text("{ a b c }", max_tokens=4)
    Traceback (most recent call last):
    ...
    graphql.error.syntax_error.GraphQLSyntaxError: Syntax Error: Document contains more than 4 tokens. Parsing aborted.
    <BLANKLINE>
    GraphQL request:1:9
    1 | { a b c }
      |         ^
"""  # noqa: E501 (a doctest's exact output)

from __future__ import annotations

import functools
import re
from typing import Any, Final

from graphql import DocumentNode, GraphQLSyntaxError, Source, parse

__all__ = ["CHARS_PER_TOKEN", "PARSE_CACHE_SIZE", "check_text", "count_tokens", "parse_text"]

#: Distinct query texts whose parse (and validation, gateway/limits.py) are kept
#: (strawberry's default, 128).
PARSE_CACHE_SIZE: Final = 128

#: A text may be at most this many characters per token of ``UCD_GATEWAY_MAX_TOKENS``.
CHARS_PER_TOKEN: Final = 16

#: One token after whatever is ignored before it (the GraphQL spec's ignored tokens: spaces, line
#: terminators, commas, the byte order mark), as the lexer reads them. Each alternative
#: consumes what no other one starts with, so a failed match never backtracks far: the
#: cost is linear in the text. Group 1 is the token, its start the position the parser
#: reports.
_TOKEN: Final = re.compile(
    r"""
    [\t\n\r ,\ufeff]*
    (
        \#[^\n\r]*                                  # a comment: counted by max_tokens
      | \.\.\.                                      # spread
      | [!$&()\[\]{}:=@|]                           # punctuators
      | [_A-Za-z][_0-9A-Za-z]*                      # names
      | -?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?   # int and float values
      | \"\"\"(?:\\\"\"\"|\\|[^"\\]|"(?!""))*\"\"\"     # block strings
      | "(?:[^"\\\n\r]|\\.)*"                       # strings
    )
    """,
    re.VERBOSE,
)


def count_tokens(text: str, limit: int, end: int | None = None) -> tuple[int, int]:
    """Tokens of ``text[:end]`` up to ``limit + 1``, and where the last one counted starts.

    Stops at the first place without a token (the end, or a character GraphQL does
    not allow there), so the count is at most graphql-core's.

    >>> count_tokens('query { a(x: "s t", y: -1.5e3) ... on Q { b } } # c', 100)
    (19, 48)
    """
    count = 0
    start = 0
    position = 0
    end = len(text) if end is None else end
    match = _TOKEN.match
    while count <= limit:
        found = match(text, position, end)
        if found is None:
            break
        count += 1
        start = found.start(1)
        position = found.end()
    return count, start


def check_text(text: str, *, max_tokens: int) -> None:
    """Raise graphql-core's syntax error for a text that has more than ``max_tokens``
    tokens or is too long; return for any other, which the parser then reads.

    Tokens first, counted in the longest text allowed at most: a text with too many
    of them gets the parser's message whatever its length.

    A text of at most ``max_tokens`` characters is not counted: every token is at least
    one character long, so it cannot have too many, and it is far from too long. That
    is nearly every operation (5,000 by default), sent as new documents or not.
    """
    if len(text) <= max_tokens:
        return
    longest = max_tokens * CHARS_PER_TOKEN
    count, start = count_tokens(text, max_tokens, end=min(len(text), longest))
    if count > max_tokens:
        # Only the text up to the bound is scanned for the error's line and column.
        raise GraphQLSyntaxError(
            Source(text[:longest]),
            start,
            f"Document contains more than {max_tokens} tokens. Parsing aborted.",
        )
    if len(text) > longest:
        # The position is where the text crossed the bound; only the text up to there
        # is scanned for the error's line and column.
        raise GraphQLSyntaxError(
            Source(text[: longest + 1]),
            longest,
            f"Document is longer than {longest} characters ({CHARS_PER_TOKEN} per token "
            f"of the {max_tokens} allowed). Parsing aborted.",
        )


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_text(query: str, *, max_tokens: int | None = None, **options: Any) -> DocumentNode:
    """The parser cache: strawberry's ParserCache with MaxTokensLimiter, as one function.
    Parse errors (the token limit included) are raised, never cached, as
    ``functools.lru_cache`` does.

    A text is first checked (``check_text``): too many tokens or characters are refused
    in a few ms, before graphql-core's lexer reads it character by character. Only on a
    miss: a cached text passed already. One cache for every caller (the request's parse,
    the compiled path, APQ registration), so no text is parsed twice while it is kept.
    """
    if max_tokens is not None:
        check_text(query, max_tokens=max_tokens)
    return parse(query, max_tokens=max_tokens, **options)
