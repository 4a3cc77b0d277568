"""schema/schema.graphql is generated from the code and honours the public contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema as parse_sdl
from graphql import find_breaking_changes, find_dangerous_changes

from gateway.api.schema import build_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "schema.graphql"
# The public contract, vendored so the test runs on any checkout; the team's copy lives
# in ../shared/contract and the last test keeps the two identical when both exist.
CONTRACT = ROOT / "schema" / "contract.graphql"
SHARED_CONTRACT = ROOT.parent / "shared" / "contract" / "gateway.graphql"


#: Optional arguments the gateway adds to the contract's fields (an addition, which
#: graphql-core counts as "dangerous" since a client may pass it to an older server).
ADDED_ARGUMENTS = frozenset(
    {"An optional argument Query.user(fresh:) was added."}  # the profile cache's bypass
)


def generated_sdl() -> str:
    # The same text `ucd-gateway schema` writes (cli.py): as_str() plus one final newline.
    return build_schema().as_str().rstrip("\n") + "\n"


def test_schema_file_matches_the_code() -> None:
    """Regenerate with `make schema` when this fails."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == generated_sdl()


def test_generated_schema_keeps_every_contract_name_and_type() -> None:
    contract = parse_sdl(CONTRACT.read_text(encoding="utf-8"))
    ours = parse_sdl(generated_sdl())
    assert find_breaking_changes(contract, ours) == []
    # Dangerous changes include changed argument defaults and enum values added.
    dangerous = [
        change
        for change in find_dangerous_changes(contract, ours)
        if change.description not in ADDED_ARGUMENTS
    ]
    assert dangerous == []


def test_identifier_input_is_one_of() -> None:
    assert "input IdentifierInput @oneOf {" in generated_sdl()


def test_vendored_contract_is_the_shared_one() -> None:
    if not SHARED_CONTRACT.exists():
        pytest.skip("no ../shared/contract beside this checkout")
    assert CONTRACT.read_bytes() == SHARED_CONTRACT.read_bytes()
