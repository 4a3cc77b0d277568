"""Only gateway/ucd/ (and the local UCD) know the UCD's wire format.

Outside them no module may hold a UCD path (``"/api/..."``) or use a UCD body key as a
string literal where a body is built or read: a dict display key, a subscript, or the
first argument of ``.get``/``.pop``/``.setdefault``. Docstring examples of modules are
checked to run, so the worked examples that moved with the code stay true.
"""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

import gateway

PACKAGE = Path(gateway.__file__).parent
OWNERS = (PACKAGE / "ucd", PACKAGE / "local_ucd")

BODY_KEYS = frozenset(
    [
        "insider_id",
        "identifiers",
        "attributes",
        "events",
        "start_date",
        "end_date",
        "wanted",
        "event_name",
        "params",
        "limit_per_source",
        "event_params",
        "users",
        "skip_hook",
        "append",
        "not_append",
        "whole",
        "partial",
        "custom",
        "segment",
        "segment_id",
        "format",
        "hook",
        "old_identifier",
        "new_identifier",
        "table",
        "successful",
        "fail",
        "count",
        "created_date",
        "timestamp",
        "source",
        "email",
        "phone_number",
        "uuid",
        "iid",
        "url",
        "filters",
        "quota",
    ]
)


def _text(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def wire_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, literal)`` of every UCD path or body key used as above."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        candidates: list[str | None] = []
        text = _text(node)
        if text is not None and text.startswith("/api/"):
            found.append((getattr(node, "lineno", 0), text))
        if isinstance(node, ast.Dict):
            candidates += [_text(key) for key in node.keys]
        elif isinstance(node, ast.Subscript):
            candidates.append(_text(node.slice))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and node.args
        ):
            candidates.append(_text(node.args[0]))
        found += [(getattr(node, "lineno", 0), c) for c in candidates if c in BODY_KEYS]
    return found


MODULES = sorted(
    path
    for path in PACKAGE.rglob("*.py")
    if not any(path.is_relative_to(owner) for owner in OWNERS)
)


def test_the_check_sees_what_it_looks_for() -> None:
    tree = ast.parse('x = {"users": 1}; y["iid"]; z.get("events"); p = "/api/user/v1/x"')
    assert sorted(text for _, text in wire_literals(tree)) == [
        "/api/user/v1/x",
        "events",
        "iid",
        "users",
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_outside_the_ucd_package_speaks_the_wire_format(path: Path) -> None:
    assert wire_literals(ast.parse(path.read_text())) == []


@pytest.mark.parametrize(
    "module",
    [
        "gateway.ucd.envelope",
        "gateway.ucd.error_keys",
        "gateway.ucd.names",
        "gateway.ucd.requests",
        "gateway.ucd.rules",
        "gateway.ucd.times",
        "gateway.api.types",
    ],
)
def test_docstring_examples_hold(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
