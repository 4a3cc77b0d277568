"""Export file layout and encodings (§3.3.4), without the HTTP layer."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.local_ucd.events.query import EventsRequest, WantedItem
from gateway.local_ucd.exports import files as export_files
from gateway.local_ucd.exports.files import FORMATS, build_layout, open_writer, render_text


def events(*items: WantedItem) -> EventsRequest:
    return EventsRequest(0, 10, items)


def test_listed_attributes_resolve_drop_duplicates_and_iid_and_keep_unknown_names() -> None:
    layout = build_layout(
        ["gdpr_optin", "iid", "gdpr", "locale", "em", "list_id", "c_tier", "no_such", "c_tier"],
        None,
        ["zeta"],
    )
    assert layout.columns == (
        "iid",
        "a_gdpr",
        "a_lo",
        "a_email",
        "a_static_segment_id",
        "a_c_tier",
        "a_no_such",
    )
    assert layout.items is None


def test_star_is_the_defaults_in_table_order_then_the_catalogue() -> None:
    layout = build_layout("*", None, ["alpha", "crm_id", "zeta"])
    assert layout.columns[:4] == ("iid", "a_email", "a_phone_number", "a_uuid")
    assert layout.columns[-5:] == (
        "a_gdpr",
        "a_static_segment_id",
        "a_c_alpha",
        "a_c_crm_id",
        "a_c_zeta",
    )
    assert len(layout.columns) == 1 + 17 + 3


def test_event_columns_follow_first_appearance_and_skip_non_parameters() -> None:
    layout = build_layout(
        None,
        events(
            WantedItem("purchase", ("timestamp", "product_id", "c_gift", "created_date", "source")),
            WantedItem("view", ("event_name", "url", "product_id", "url")),
            WantedItem("purchase", ("repeated_item_ignored",)),
        ),
        [],
    )
    assert layout.columns == (
        "iid",
        "e_event_name",
        "e_created_date",
        "e_product_id",
        "e_c_gift",
        "e_source",
        "e_url",
    )
    assert layout.item_columns == (
        ((3, "product_id"), (4, "c_gift"), (5, "source")),
        ((6, "url"), (3, "product_id")),
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param("a,b", "a,b", id="string-verbatim"),
        pytest.param(1, "1", id="integer"),
        pytest.param(1.0, "1.0", id="float-as-sent"),
        pytest.param(990.9, "990.9", id="decimal"),
        pytest.param(True, "true", id="true"),
        pytest.param(False, "false", id="false"),
        pytest.param(["a", 1], '["a",1]', id="array-compact"),
        pytest.param({"k": [1]}, '{"k":[1]}', id="object-compact"),
        pytest.param(None, None, id="missing"),
    ],
)
def test_values_render_as_the_spec_says(value: Any, text: str | None) -> None:
    assert render_text(value) == text


ROWS: list[list[Any]] = [
    ["i1", 'say "hi", ok', True, None],
    ["i2", "line\nbreak", 3.5, ["x"]],
    ["i3", "", None, None],
]


def write_rows(path: Path, fmt: str) -> bytes:
    """Write :data:`ROWS` under columns ``iid, a, b, c``; the finished file's bytes."""
    writer = open_writer(FORMATS[fmt], path, ["iid", "a", "b", "c"])
    for row in ROWS:
        writer.write_row(row)
    writer.finish()
    return path.read_bytes()


def test_csv_quotes_per_rfc_4180_with_crlf_and_no_bom(tmp_path: Path) -> None:
    data = write_rows(tmp_path / "f.csv", "csv")
    assert data == (
        b'iid,a,b,c\r\ni1,"say ""hi"", ok",true,\r\ni2,"line\nbreak",3.5,"[""x""]"\r\ni3,,,\r\n'
    )
    parsed = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert parsed[2] == ["i2", "line\nbreak", "3.5", '["x"]']


def test_ndjson_keeps_types_and_column_order(tmp_path: Path) -> None:
    lines = write_rows(tmp_path / "f.json", "json").split(b"\n")
    assert lines[-1] == b""
    assert lines[0] == b'{"iid":"i1","a":"say \\"hi\\", ok","b":true,"c":null}'
    assert orjson.loads(lines[1]) == {"iid": "i2", "a": "line\nbreak", "b": 3.5, "c": ["x"]}


def test_parquet_is_written_in_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    monkeypatch.setattr(export_files, "PARQUET_ROW_GROUP", 2)
    path = tmp_path / "f.parquet"
    writer = open_writer(FORMATS["parquet"], path, ["iid", "a", "b", "c"])
    for row in ROWS:
        writer.write_row(row)
    writer.finish()
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 2
    assert parquet.metadata.format_version == "1.0"
    assert parquet.read().to_pylist() == [
        {"iid": "i1", "a": 'say "hi", ok', "b": "true", "c": None},
        {"iid": "i2", "a": "line\nbreak", "b": "3.5", "c": '["x"]'},
        {"iid": "i3", "a": "", "b": None, "c": None},
    ]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_abort_leaves_no_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"f.{fmt}"
    writer = open_writer(FORMATS[fmt], path, ["iid"])
    writer.write_row(["i1"])
    writer.abort()
    assert not path.exists()
