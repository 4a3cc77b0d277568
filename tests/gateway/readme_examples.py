"""The README's examples, read from its fenced blocks, and how an answer is held to one.

Why a parser: the README is what a new user copies from, so every example in it is run
against the gateway (tests/gateway/test_readme_examples.py), and it cannot drift from
what the gateway answers. The markup stays plain Markdown that GitHub renders; what a
block is for is said by words after the language in its fence (GitHub ignores them):

``graphql`` [``poll``] [``env=NAME=VALUE`` ...]
    An example: the document sent to ``POST /graphql``. The next block may be
    ``json variables`` (its variables); the block after that, a plain ``json`` one, is
    the answer. ``poll``: sent again until it answers so (up to ``POLL_SECONDS``), as a
    client polls ``exportJob``. ``env=``: run on a gateway of its own, started with
    these variables on an empty local UCD, rather than on the README's running one.
``sh example``
    One ``curl`` command (``-s``, ``-H``, ``-d``, ``-G`` with ``--data-urlencode``, and a
    URL on the gateway, port 8000, or the local UCD, port 8765); the next ``json`` block
    is the body it answers.
``sh setup``
    ``ucd-gateway seed`` commands, run in order before the examples after them; a line
    ``# <output>`` right after a command is what it prints.

A fence may be indented (a block inside a list item). Every other block is prose.
Answers are compared exactly, but for values that differ on every run (see
:func:`normalised`) and the answer's top-level ``extensions`` (each
operation's cost), compared only where the README shows them.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

__all__ = [
    "POLL_SECONDS",
    "VOLATILE_FORMS",
    "CurlExample",
    "GraphqlExample",
    "ReadmeError",
    "Setup",
    "Volatile",
    "normalised",
    "normalised_answer",
    "read_readme",
]

#: How long a ``poll`` example may take to answer as shown (an export job turning READY).
POLL_SECONDS: Final = 60.0

_UUID: Final = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_DATE_TIME: Final = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"
#: Keys whose values are made by the UCD or the gateway when the example runs: compared
#: by their form, and the same value shown twice must be the same value answered twice.
#: ``insiderId`` and a job's ``id`` (``jobId`` in an error) are random UUIDs; the ``*At``
#: times are "now"; a job's ``url`` names a random file on whatever port the UCD listens.
VOLATILE_FORMS: Final[Mapping[str, re.Pattern[str]]] = {
    "insiderId": re.compile(_UUID),
    "id": re.compile(_UUID),
    "jobId": re.compile(_UUID),
    "requestedAt": re.compile(_DATE_TIME),
    "readyAt": re.compile(_DATE_TIME),
    "expiresAt": re.compile(_DATE_TIME),
    "url": re.compile(r"https?://[^\s\"]+"),
}

_FENCE: Final = re.compile(
    r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)


class ReadmeError(AssertionError):
    """The README's blocks do not follow the markup of this module's docstring."""


@dataclass(frozen=True)
class Block:
    line: int
    words: tuple[str, ...]
    body: str

    @property
    def language(self) -> str:
        return self.words[0] if self.words else ""


@dataclass(frozen=True)
class GraphqlExample:
    line: int
    query: str
    variables: dict[str, Any] | None
    answer: Any
    poll: bool = False
    env: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"


@dataclass(frozen=True)
class CurlExample:
    line: int
    url: str
    headers: tuple[tuple[str, str], ...]
    data: str | None
    answer: Any
    #: ``-G``: the ``--data-urlencode`` pairs go in the URL's query string of a GET.
    params: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"


@dataclass(frozen=True)
class Setup:
    """``ucd-gateway seed`` runs: the arguments after ``seed``, and the output shown."""

    line: int
    commands: tuple[tuple[tuple[str, ...], str | None], ...]


Step = GraphqlExample | CurlExample | Setup


def blocks(text: str) -> list[Block]:
    """The fenced blocks that start a line, with the line number of their fence."""
    return [
        Block(
            text.count("\n", 0, match.start()) + 1,
            tuple(match["info"].split()),
            textwrap.dedent(match["body"]),
        )
        for match in _FENCE.finditer(text)
    ]


def _json(block: Block, what: str) -> Any:
    try:
        return orjson.loads(block.body)
    except orjson.JSONDecodeError as exc:
        raise ReadmeError(f"README.md:{block.line}: {what} is not JSON: {exc}") from exc


def _answer(found: Iterator[Block], after: Block) -> tuple[Block, Any]:
    block = next(found, None)
    if block is None or block.words != ("json",):
        raise ReadmeError(f"README.md:{after.line}: the example has no ```json answer after it")
    return block, _json(block, "the answer")


def _graphql(block: Block, found: Iterator[Block]) -> GraphqlExample:
    poll, env = False, []
    for word in block.words[1:]:
        if word == "poll":
            poll = True
        elif word.startswith("env=") and "=" in word[4:]:
            name, value = word[4:].split("=", 1)
            env.append((name, value))
        else:
            raise ReadmeError(f"README.md:{block.line}: unknown word {word!r} in the fence")
    following = next(found, None)
    variables = None
    if following is not None and following.words == ("json", "variables"):
        variables = _json(following, "the variables")
        if not isinstance(variables, dict):
            raise ReadmeError(f"README.md:{following.line}: variables must be a JSON object")
        following = next(found, None)
    if following is None or following.words != ("json",):
        raise ReadmeError(f"README.md:{block.line}: the example has no ```json answer after it")
    answer = _json(following, "the answer")
    return GraphqlExample(block.line, block.body, variables, answer, poll, tuple(env))


def _curl(block: Block, found: Iterator[Block]) -> CurlExample:
    words = shlex.split(block.body.replace("\\\n", " "), comments=True)
    if not words or words[0] != "curl":
        raise ReadmeError(f"README.md:{block.line}: an sh example is one curl command")
    url, headers, data, get, params = None, [], None, False, []
    rest = iter(words[1:])
    for word in rest:
        if word == "-s":
            continue
        if word == "-G":
            get = True
        elif word == "--data-urlencode":
            name, _, value = next(rest, "").partition("=")
            params.append((name, value))
        elif word == "-H":
            name, _, value = next(rest, "").partition(":")
            headers.append((name.strip(), value.strip()))
        elif word == "-d":
            data = next(rest, None)
        elif not word.startswith("-") and url is None:
            url = word
        else:
            raise ReadmeError(f"README.md:{block.line}: curl option {word!r} is not supported")
    if url is None:
        raise ReadmeError(f"README.md:{block.line}: the curl command has no URL")
    if bool(params) != get or (get and data is not None):
        raise ReadmeError(f"README.md:{block.line}: --data-urlencode goes with -G, -d without")
    _, answer = _answer(found, block)
    url = url if "://" in url else f"http://{url}"  # as curl takes a URL without a scheme
    return CurlExample(block.line, url, tuple(headers), data, answer, tuple(params))


def _setup(block: Block) -> Setup:
    commands: list[tuple[tuple[str, ...], str | None]] = []
    for line in block.body.splitlines():
        if line.startswith("# ") and commands and commands[-1][1] is None:
            commands[-1] = (commands[-1][0], line[2:])
            continue
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if not words[0].endswith("ucd-gateway") or words[1:2] != ["seed"]:
            raise ReadmeError(f"README.md:{block.line}: a setup runs ucd-gateway seed only")
        commands.append((tuple(words[2:]), None))
    return Setup(block.line, tuple(commands))


def read_readme(text: str) -> list[Step]:
    """The README's examples and set-ups, in order (see the module docstring)."""
    steps: list[Step] = []
    found = iter(blocks(text))
    for block in found:
        if block.language == "graphql":
            steps.append(_graphql(block, found))
        elif block.words == ("sh", "example"):
            steps.append(_curl(block, found))
        elif block.words == ("sh", "setup"):
            steps.append(_setup(block))
        elif block.words == ("json", "variables"):
            raise ReadmeError(f"README.md:{block.line}: variables with no ```graphql before")
    return steps


@dataclass
class Volatile:
    """README value -> the value the gateway answered in its place, for volatile keys."""

    bound: dict[str, str] = field(default_factory=dict)

    def substitute(self, text: str) -> str:
        """``text`` (a query, variables, a URL) with the README's values made the real ones."""
        for shown, real in self.bound.items():
            text = text.replace(shown, real)
        return text


def normalised_answer(actual: Any, expected: Any, volatile: Volatile) -> Any:
    """The answer as :func:`normalised` makes it, without the top-level ``extensions``
    when the README's answer leaves them out (of each answer of a batch, too)."""
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        return [normalised_answer(a, e, volatile) for a, e in zip(actual, expected, strict=True)]
    if isinstance(actual, dict) and isinstance(expected, dict) and "extensions" not in expected:
        actual = {k: v for k, v in actual.items() if k != "extensions"}
    return normalised(actual, expected, volatile)


def normalised(actual: Any, expected: Any, volatile: Volatile, key: str | None = None) -> Any:
    """``actual`` with each volatile value replaced by the README's, where both have the
    key's form and the README's value is not bound to another; new pairs are bound in
    ``volatile``. Everything else is left as answered, so ``== expected`` is exact."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        return {k: normalised(v, expected.get(k), volatile, k) for k, v in actual.items()}
    if isinstance(actual, list) and isinstance(expected, list):
        # Compared item by item as far as both go; a length that differs stays a difference.
        paired = expected[: len(actual)] + [None] * max(0, len(actual) - len(expected))
        return [normalised(a, e, volatile, key) for a, e in zip(actual, paired, strict=True)]
    form = VOLATILE_FORMS.get(key or "")
    if form is None or not isinstance(actual, str) or not isinstance(expected, str):
        return actual
    if not (form.fullmatch(actual) and form.fullmatch(expected)):
        return actual
    bound = volatile.bound.get(expected)
    if bound is None and actual not in volatile.bound.values():
        volatile.bound[expected] = actual
        return expected
    return expected if bound == actual else actual
