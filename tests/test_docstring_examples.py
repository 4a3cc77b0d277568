"""The worked examples in module docstrings run, so they stay true as the code moves.

(Which modules may speak the UCD's wire format is checked in tests/test_architecture.py.)
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent

#: Every module of the package with an example in it: a new example is run without
#: anyone having to list it here.
WITH_EXAMPLES: Final = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for path in (ROOT / "gateway").rglob("*.py")
    if ">>> " in path.read_text(encoding="utf-8")
)


def test_the_package_has_examples_to_run() -> None:
    assert "gateway.ucd.requests" in WITH_EXAMPLES


@pytest.mark.parametrize("module", WITH_EXAMPLES)
def test_docstring_examples_hold(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
