"""The worst GraphQL documents we can build, refused or answered, and how long each takes.

Two tables:

1. Through the gateway app in this process (``httpx.ASGITransport``, default settings, a
   scripted UCD that counts calls): the time of one ``POST /graphql`` per document, best
   and worst of ``REPEATS``, with a fresh query text each time so neither the parser nor
   the validation cache answers. Then ``/healthz``'s latency while ``CONCURRENT`` of the
   worst documents are refused at once.
2. The pass alone (gateway/document_limits.py's ``measure``) on the same documents parsed
   without a token limit, as an operator who raised ``UCD_GATEWAY_MAX_TOKENS`` would let
   them through: the pass stays linear in the document's size.

``python -m bench document_limits``.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import httpx
from asgi_lifespan import LifespanManager
from graphql import parse

from gateway.app import create_app
from gateway.document_limits import DocumentLimits, full_introspection_query, measure
from gateway.settings import Settings

REPEATS: Final = 5
CONCURRENT: Final = 20
BODY_BYTES: Final = 5_000_000


def fragment_bomb(levels: int) -> str:
    """``levels`` fragments each spreading the one below twice: 853 bytes at 20 levels,
    2**20 ``name`` fields once expanded. The tests send the same documents."""
    fragments = " ".join(
        f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    )
    return (
        f"fragment F0 on User {{ name }} {fragments} "
        f'{{ user(key: {{uuid: "x"}}) {{ ...F{levels} }} }}'
    )


def aliases_of(size: int) -> str:
    """``{ a0: __typename a1: __typename ... }`` of about ``size`` bytes."""
    parts: list[str] = []
    total = 4
    i = 0
    while total < size:
        part = f"a{i}: __typename"
        parts.append(part)
        total += len(part) + 1
        i += 1
    return "{ " + " ".join(parts) + " }"


def introspection_chain(levels: int) -> str:
    return "{ __schema { types { " + "ofType { " * levels + "name" + " }" * levels + " } } }"


def spread_duplicates(count: int) -> str:
    """``count`` fragments, each selecting ``__typename``, spread into one selection set:
    graphql-core compares every pair of them."""
    fragments = " ".join(f"fragment D{i} on Query {{ __typename }}" for i in range(count))
    return fragments + " { " + " ".join(f"...D{i}" for i in range(count)) + " }"


FULL_INTROSPECTION: Final = full_introspection_query()

#: (label, document); each under the body limit once wrapped in JSON.
DOCUMENTS: Final[list[tuple[str, Callable[[], str]]]] = [
    ("fragment bomb, 24 levels", lambda: fragment_bomb(24)),
    ("fragment bomb, 40 levels", lambda: fragment_bomb(40)),
    ("5 MB of aliases", lambda: aliases_of(BODY_BYTES - 200)),
    ("100,000 duplicate fields", lambda: "{ " + "__typename " * 100_000 + "}"),
    ("800 duplicate fields", lambda: "{ " + "__typename " * 800 + "}"),
    ("introspection ofType chain, 25 deep", lambda: introspection_chain(25)),
    ("introspection ofType chain, 150 deep", lambda: introspection_chain(150)),
    ("700 fragments of one field, spread side by side", lambda: spread_duplicates(700)),
    ("full introspection query (accepted)", lambda: FULL_INTROSPECTION),
]

#: Texts that cost graphql-core's lexer their length rather than their tokens, refused
#: before it reads them (gateway/document_text.py); timed through the app only (the pass
#: alone would parse 5 MB of them without a limit, for seconds).
TEXTS: Final[list[tuple[str, Callable[[], str]]]] = [
    ("5 MB of spaces around one field", lambda: "{ " + " " * (BODY_BYTES - 200) + " __typename }"),
    (
        "5 MB string literal",
        lambda: '{ user(key: {uuid: "' + "x" * (BODY_BYTES - 200) + '"}) { name } }',
    ),
    ("5 MB of comment lines", lambda: "#\n" * ((BODY_BYTES - 200) // 3) + "{ __typename }"),
    ("5,002 tokens in 55 KB", lambda: "{ " + "__typename " * 5_000 + "}"),
    (
        "70 KB string literal (refused: identifier length)",
        lambda: '{ user(key: {uuid: "' + "x" * 70_000 + '"}) { name } }',
    ),
    (
        "4,997 tokens of aliases (refused: fields)",
        lambda: "{ " + " ".join(f"a{i}: __typename" for i in range(1665)) + " }",
    ),
]


@asynccontextmanager
async def _gateway() -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    calls: list[str] = []

    def ucd(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(500)

    settings = Settings(_env_file=None, ucd_base_url="http://ucd", max_retries=0)  # type: ignore[call-arg]
    async with httpx.AsyncClient(transport=httpx.MockTransport(ucd), base_url="http://ucd") as http:
        app = create_app(settings, http_client=http)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(manager.app), base_url="http://gw"
            ) as client,
        ):
            yield client, calls


def _variant(query: str, n: int) -> str:
    """The same document with a different text (a trailing comment): no cache answers."""
    return f"{query}\n# {n}"


async def _post(client: httpx.AsyncClient, query: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = await client.post("/graphql", json={"query": query})
    elapsed = time.perf_counter() - started
    body = response.json()
    errors = body.get("errors") or []
    outcome = f"{response.status_code} " + (
        f"{errors[0]['extensions']['code']}: {errors[0]['message'][:90]}"
        + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
        if errors
        else "answered"
    )
    return elapsed, outcome


async def _through_the_app() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with _gateway() as (client, calls):
        await _post(client, "{ __typename }")  # warm-up
        for label, build in DOCUMENTS + TEXTS:
            query = build()
            calls.clear()
            times: list[float] = []
            outcome = ""
            for n in range(REPEATS):
                elapsed, outcome = await _post(client, _variant(query, n))
                times.append(elapsed)
            rows.append(
                {
                    "document": label,
                    "bytes": len(query),
                    "best_ms": min(times) * 1e3,
                    "median_ms": statistics.median(times) * 1e3,
                    "worst_ms": max(times) * 1e3,
                    "ucd_calls": len(calls),
                    "outcome": outcome,
                }
            )

        bomb = fragment_bomb(40)

        async def health() -> float:
            await asyncio.sleep(0.001)  # let the refusals start first
            started = time.perf_counter()
            response = await client.get("/healthz")
            assert response.status_code == 200
            return time.perf_counter() - started

        started = time.perf_counter()
        results = await asyncio.gather(
            *(_post(client, _variant(bomb, 100 + n)) for n in range(CONCURRENT)), health()
        )
        healthz = {
            "refusals": CONCURRENT,
            "all_ms": (time.perf_counter() - started) * 1e3,
            "healthz_ms": float(results[-1]) * 1e3,  # type: ignore[arg-type]
        }
    return rows, healthz


def _pass_alone() -> list[dict[str, Any]]:
    limits = DocumentLimits(max_fields=1000, max_query_depth=10, max_aliases=50, max_directives=50)
    rows: list[dict[str, Any]] = []
    for label, build in DOCUMENTS:
        query = build()
        started = time.perf_counter()
        document = parse(query, no_location=True)
        parsed = time.perf_counter() - started
        best = float("inf")
        refusal: str | None = None
        for _ in range(REPEATS):
            started = time.perf_counter()
            refusal = limits.refusal(measure(document))
            best = min(best, time.perf_counter() - started)
        rows.append(
            {
                "document": label,
                "parse_ms": parsed * 1e3,
                "pass_ms": best * 1e3,
                "refused_by": _limit_named(refusal),
            }
        )
    return rows


def _limit_named(refusal: str | None) -> str:
    """The setting a refusal names (each message ends with one), or "accepted"."""
    if refusal is None:
        return "accepted"
    match = re.search(r"UCD_GATEWAY_[A-Z_]+", refusal)
    return f"`{match.group()}`" if match else refusal


def run() -> dict[str, Any]:
    """Time every document through the app and through the pass alone; print tables."""
    app_rows, healthz = asyncio.run(_through_the_app())
    print(f"Through the app, default settings; best, median and worst of {REPEATS} requests:\n")
    print("| document | bytes | best ms | median ms | worst ms | UCD calls | answer |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for row in app_rows:
        print(
            f"| {row['document']} | {row['bytes']:,} | {row['best_ms']:.2f} | "
            f"{row['median_ms']:.2f} | "
            f"{row['worst_ms']:.2f} | {row['ucd_calls']} | {row['outcome']} |"
        )
    print(
        f"\n`/healthz` while {healthz['refusals']} 40-level fragment bombs are refused at once: "
        f"{healthz['healthz_ms']:.1f} ms (all {healthz['refusals'] + 1} requests: "
        f"{healthz['all_ms']:.1f} ms).\n"
    )
    pass_rows = _pass_alone()
    print("The pass alone, on documents parsed without a token limit:\n")
    print("| document | parse ms | pass ms | refused by |")
    print("|---|---:|---:|---|")
    for row in pass_rows:
        print(
            f"| {row['document']} | {row['parse_ms']:.1f} | {row['pass_ms']:.2f} | "
            f"{row['refused_by']} |"
        )
    return {"app": app_rows, "healthz": healthz, "pass": pass_rows}


if __name__ == "__main__":
    run()
