"""Every example of README.md, run against the real gateway, answers as the README shows.

What a reader does, in the README's order: ``ucd-gateway serve`` on an empty embedded
local UCD (a real process on free loopback ports), the examples sent to ``POST /graphql``
over HTTP, ``ucd-gateway seed`` where the README seeds, ``curl`` examples sent as written
(to the gateway's or the local UCD's actual port), and ``exportJob`` polled until the
local UCD's webhook has made the job READY. An example marked ``env=`` runs on a gateway
of its own with those variables. The markup and the comparison (exact, but for values
that differ on every run: ids, times of now, export links) are in
tests/gateway/readme_examples.py.

One run serves every test here (module-scoped): the examples depend on one another (the
upsert before the read, the job before its status), as they do for the reader.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
import pytest
from graphql import OperationDefinitionNode, OperationType, parse

from gateway.api.schema import build_schema
from gateway.api.strawberry_internals import graphql_core_schema
from tests.gateway.readme_examples import (
    POLL_SECONDS,
    VOLATILE_FORMS,
    CurlExample,
    GraphqlExample,
    ReadmeError,
    Setup,
    Step,
    Volatile,
    normalised,
    normalised_answer,
    read_readme,
)
from tests.gateway.served_gateway import ServedGateway, serving_gateway

README: Final = Path(__file__).resolve().parents[2] / "README.md"


def _read_steps() -> tuple[list[Step], str | None]:
    """The README's steps, or none and why (a README that breaks the markup fails
    ``test_the_readme_examples_are_well_formed`` rather than the whole module's import)."""
    try:
        return read_readme(README.read_text("utf-8")), None
    except ReadmeError as exc:
        return [], str(exc)


STEPS, MALFORMED = _read_steps()
#: Where the README's reader finds the gateway and the embedded local UCD (the defaults).
README_GATEWAY: Final = ("http://127.0.0.1:8000", "http://localhost:8000")
README_UCD: Final = ("http://127.0.0.1:8765", "http://localhost:8765")


@dataclass
class Outcome:
    """What one step answered: normalised for comparison, and raw with the bindings
    before it, so a test can check an edited README answer would not match."""

    got: Any = None
    raw: Any = None
    bound_before: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Reader:
    """Runs steps against one served gateway, keeping the volatile values it has seen."""

    def __init__(self, served: ServedGateway, ucd_origin: str) -> None:
        self.served = served
        self.ucd_origin = ucd_origin
        self.volatile = Volatile()
        self.http = httpx.Client(timeout=30.0)

    def url(self, text: str) -> str:
        text = self.volatile.substitute(text)
        for shown in README_GATEWAY:
            text = text.replace(shown, self.served.origin)
        for shown in README_UCD:
            text = text.replace(shown, self.ucd_origin)
        return text

    def run(self, step: Step) -> Outcome:
        before = dict(self.volatile.bound)
        if isinstance(step, Setup):
            return Outcome(got=self._setup(step), bound_before=before)
        if isinstance(step, CurlExample):
            raw = self._curl(step)
            return Outcome(normalised_answer(raw, step.answer, self.volatile), raw, before)
        return self._graphql(step, before)

    def _graphql(self, example: GraphqlExample, before: dict[str, str]) -> Outcome:
        body: dict[str, Any] = {"query": self.volatile.substitute(example.query)}
        if example.variables is not None:
            text = self.volatile.substitute(orjson.dumps(example.variables).decode())
            body["variables"] = orjson.loads(text)
        deadline = time.monotonic() + POLL_SECONDS
        while True:
            response = self.http.post(f"{self.served.origin}/graphql", json=body)
            raw = orjson.loads(response.content)
            trial = Volatile(dict(self.volatile.bound))
            got = normalised_answer(raw, example.answer, trial)
            if got == example.answer or not example.poll or time.monotonic() > deadline:
                self.volatile = trial
                return Outcome(got, raw, before)
            time.sleep(0.2)

    def _curl(self, example: CurlExample) -> Any:
        response = self.http.request(
            "POST" if example.data is not None else "GET",
            self.url(example.url),
            params=[(name, self.volatile.substitute(value)) for name, value in example.params],
            headers=dict(example.headers),
            content=example.data,
        )
        return orjson.loads(response.content)

    def _setup(self, setup: Setup) -> list[str | None]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("UCD_GATEWAY_")}
        printed: list[str | None] = []
        for args, _shown in setup.commands:
            done = subprocess.run(  # noqa: S603  # our own interpreter and module
                [sys.executable, "-m", "gateway", "seed", *(self.url(a) for a in args)],
                capture_output=True,
                text=True,
                env=env,
                cwd=self.served.log.parent,  # no .env of the repository's
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            printed.append(done.stdout.strip())
        return printed


@contextlib.contextmanager
def _reader(folder: Path, env: dict[str, str]) -> Iterator[Reader]:
    ucd_port = _free_port()
    env = {"UCD_GATEWAY_LOCAL_UCD_PORT": str(ucd_port), **env}
    with serving_gateway(folder, env) as served:
        reader = Reader(served, f"http://127.0.0.1:{ucd_port}")
        try:
            yield reader
        finally:
            reader.http.close()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Outcome]:
    """Each step's outcome by its line: the README's own gateway for the steps without
    ``env=``, in order, and one gateway per distinct ``env=`` for the others."""
    groups: dict[tuple[tuple[str, str], ...], list[Step]] = {}
    for step in STEPS:
        groups.setdefault(step.env if isinstance(step, GraphqlExample) else (), []).append(step)
    found: dict[int, Outcome] = {}
    for env, steps in groups.items():
        with _reader(tmp_path_factory.mktemp("readme"), dict(env)) as reader:
            for step in steps:
                try:
                    found[step.line] = reader.run(step)
                except (AssertionError, httpx.HTTPError, orjson.JSONDecodeError) as exc:
                    found[step.line] = Outcome(error=f"{type(exc).__name__}: {exc}")
    return found


def _expected(step: Step) -> Any:
    if isinstance(step, Setup):
        return [shown for _, shown in step.commands]
    return step.answer


def test_the_readme_examples_are_well_formed() -> None:
    assert MALFORMED is None, MALFORMED
    assert len(STEPS) > 10


@pytest.mark.parametrize("step", STEPS, ids=[f"README.md:{s.line}" for s in STEPS])
def test_the_readme_example_answers_as_shown(step: Step, outcomes: dict[int, Outcome]) -> None:
    outcome = outcomes[step.line]
    assert outcome.error is None, outcome.error
    assert outcome.got == _expected(step)


# --- the README covers the schema -------------------------------------------------------


def _root_fields(query: str) -> Iterator[tuple[OperationType, str]]:
    for definition in parse(query).definitions:
        if isinstance(definition, OperationDefinitionNode):
            for selection in definition.selection_set.selections:
                name = getattr(selection, "name", None)
                if name is not None:
                    yield definition.operation, name.value


def test_every_query_and_mutation_field_has_a_readme_example() -> None:
    schema = graphql_core_schema(build_schema())
    roots = {OperationType.QUERY: schema.query_type, OperationType.MUTATION: schema.mutation_type}
    wanted = {(kind, name) for kind, root in roots.items() if root for name in root.fields}
    shown = {
        pair
        for step in STEPS
        if isinstance(step, GraphqlExample) and not step.env
        for pair in _root_fields(step.query)
    }
    missing = sorted(f"{kind.value} {name}" for kind, name in wanted - shown)
    assert not missing, f"README.md has no example of: {missing}"


def test_the_readme_shows_an_error_answer_with_its_code() -> None:
    codes = {
        error.get("extensions", {}).get("code")
        for step in STEPS
        if isinstance(step, GraphqlExample) and isinstance(step.answer, dict)
        for error in step.answer.get("errors", ())
    }
    assert {"BAD_USER_INPUT", "NOT_FOUND", "MAX_COST_EXCEEDED"} <= codes


# --- an edited example fails ------------------------------------------------------------


def _edited(value: Any, key: str | None = None) -> tuple[Any, bool]:
    """``value`` with its first leaf that is not volatile changed (and whether one was)."""
    if isinstance(value, dict):
        for k, v in value.items():
            new, done = _edited(v, k)
            if done:
                return {**value, k: new}, True
        return value, False
    if isinstance(value, list):
        for i, v in enumerate(value):
            new, done = _edited(v, key)
            if done:
                return [*value[:i], new, *value[i + 1 :]], True
        return value, False
    if key in VOLATILE_FORMS:
        return value, False
    if isinstance(value, bool):
        return not value, True
    if isinstance(value, int | float):
        return value + 1, True
    return f"{value}!", True


@pytest.mark.parametrize(
    "example",
    [s for s in STEPS if not isinstance(s, Setup)],
    ids=[f"README.md:{s.line}" for s in STEPS if not isinstance(s, Setup)],
)
def test_an_edited_readme_answer_no_longer_matches(
    example: GraphqlExample | CurlExample, outcomes: dict[int, Outcome]
) -> None:
    """Each example's comparison can fail: the answer with one value changed does not
    match what the gateway answered."""
    outcome = outcomes[example.line]
    edited, changed = _edited(example.answer)
    assert changed, "the answer has nothing but volatile values"
    volatile = Volatile(dict(outcome.bound_before))
    assert normalised_answer(outcome.raw, edited, volatile) != edited


def test_a_volatile_value_is_held_to_its_form_and_to_one_value() -> None:
    job = "daae339d-e6c7-47ef-a673-d844992db3b0"
    other = "0c6d3f7e-2b1a-4c5d-9e8f-7a6b5c4d3e2f"
    volatile = Volatile()
    assert normalised({"id": other}, {"id": job}, volatile) == {"id": job}
    # The same README value must be the same answered value the next time.
    assert normalised({"id": job}, {"id": job}, volatile) == {"id": job} != {"id": other}
    assert normalised({"id": job}, {"id": job}, Volatile({job: other})) == {"id": job}
    assert normalised({"id": "1"}, {"id": job}, Volatile()) == {"id": "1"}
    # Not a volatile key: exact.
    assert normalised({"name": other}, {"name": job}, Volatile()) == {"name": other}
    assert Volatile({job: other}).substitute(f'exportJob(id: "{job}")') == (
        f'exportJob(id: "{other}")'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```graphql\n{ a }\n```\n", "no ```json answer"),
        ("```graphql\n{ a }\n```\n```json variables\n{}\n```\n", "no ```json answer"),
        ("```graphql soon\n{ a }\n```\n```json\n{}\n```\n", "unknown word 'soon'"),
        ('```graphql\n{ a }\n```\n```json\n{"data": \n```\n', "the answer is not JSON"),
        ("```json variables\n{}\n```\n", "variables with no ```graphql"),
        ("```sh example\ncurl -X DELETE http://x\n```\n```json\n{}\n```\n", "'-X'"),
        ("```sh example\ncurl x --data-urlencode a=b\n```\n```json\n{}\n```\n", "with -G"),
        ("```sh setup\nrm -rf .local-ucd\n```\n", "seed only"),
    ],
)
def test_a_malformed_readme_example_is_refused(text: str, message: str) -> None:
    with pytest.raises(ReadmeError, match=re.escape(message)):
        read_readme(text)
