"""JSON values compared as the UCD compares them (§2.4): numbers by value, booleans apart."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.local_ucd.store.json_values import is_integer, is_number, json_equal


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        pytest.param(1, 1.0, True, id="int-float"),
        pytest.param(True, 1, False, id="true-one"),
        pytest.param(False, 0, False, id="false-zero"),
        pytest.param(False, 0.0, False, id="false-float"),
        pytest.param(True, True, True, id="bools"),
        pytest.param("1", 1, False, id="string-number"),
        pytest.param([1, "a"], [1.0, "a"], True, id="arrays-by-value"),
        pytest.param([1, 2], [2, 1], False, id="array-order"),
        pytest.param([1], [1, 1], False, id="array-length"),
        pytest.param([True], [1], False, id="array-bool"),
        pytest.param([1, {"a": 2.0}], [1.0, {"a": 2}], True, id="nested"),
        pytest.param({"a": 1, "b": [1]}, {"b": [1.0], "a": 1.0}, True, id="objects"),
        pytest.param({"a": 1}, {"a": 1, "b": 2}, False, id="object-keys"),
        pytest.param({"a": 1}, {"b": 1}, False, id="object-other-key"),
        pytest.param(None, None, True, id="nulls"),
        pytest.param(None, 0, False, id="null-zero"),
    ],
)
def test_json_equal(left: Any, right: Any, equal: bool) -> None:
    assert json_equal(left, right) is equal
    assert json_equal(right, left) is equal


@pytest.mark.parametrize(
    ("value", "number", "integer"),
    [
        pytest.param(2, True, True, id="int"),
        pytest.param(2.0, True, True, id="integral-float"),
        pytest.param(2.5, True, False, id="fraction"),
        pytest.param(True, False, False, id="bool"),
        pytest.param("2", False, False, id="string"),
    ],
)
def test_numbers_exclude_booleans(value: Any, number: bool, integer: bool) -> None:
    assert is_number(value) is number
    assert is_integer(value) is integer
