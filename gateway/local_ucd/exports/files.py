"""Export files (§3.3.4): the column layout, the rows of one snapshot, and the three encodings.

Everything here streams: profiles come in chunks of :data:`CHUNK_PROFILES` from the
segment's lazy iterator (ascending ``insider_id``), their rows are written as they are
produced, and Parquet is flushed one row group at a time, so memory stays flat however
large the segment is.

Worked example (the spec's)::

    attributes ["email", "name", "c_tier"], wanted purchase(params product_id, quantity,
    c_gift_wrap, timestamp)
    -> iid, a_email, a_name, a_c_tier, e_event_name, e_created_date, e_product_id,
       e_quantity, e_c_gift_wrap

[LOCAL] decisions beyond the text of §3.3.4:

* a repeated ``event_name`` in ``wanted``: the first item is used and later ones are ignored,
  their parameters included (as E2 does, §3.2.3);
* an event row fills only the parameter columns *its* wanted item asked for (as E2 lists only
  the item's parameters); other items' columns stay empty on that row;
* a parameter or attribute stored as JSON ``null`` renders like a missing value in CSV and
  Parquet (empty / null) and as ``null`` in NDJSON;
* objects (allowed as default event parameters) render as compact JSON, like arrays.
"""

from __future__ import annotations

import csv
import itertools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from gateway.local_ucd.attributes.names import DEFAULT_ATTRIBUTES
from gateway.local_ucd.attributes.views import load_attribute_maps
from gateway.local_ucd.events.query import (
    NON_PARAMETERS,
    AttributesRequest,
    EventRow,
    EventsRequest,
    WantedItem,
    distinct_wanted,
    lookup_param,
    resolve_attribute_names,
    select_events,
    us_bounds,
)
from gateway.local_ucd.http import render_value
from gateway.local_ucd.timefmt import render_us

__all__ = [
    "CHUNK_PROFILES",
    "FORMATS",
    "ExportFormat",
    "Layout",
    "RowWriter",
    "SnapshotAbandoned",
    "build_layout",
    "iter_rows",
    "open_writer",
    "render_text",
    "write_export",
]

#: Profiles read per chunk: one query for their attributes, one per wanted item and profile.
CHUNK_PROFILES = 500
#: Rows per Parquet row group: bounds the memory of the Parquet writer.
PARQUET_ROW_GROUP = 20_000

_dumps = orjson.dumps


@dataclass(frozen=True)
class ExportFormat:
    """One file format: request value, file extension and download media type (§5.4)."""

    name: str
    extension: str
    media_type: str


FORMATS: Mapping[str, ExportFormat] = {
    "csv": ExportFormat("csv", "csv", "text/csv; charset=utf-8"),
    "json": ExportFormat("json", "json", "application/x-ndjson"),
    "parquet": ExportFormat("parquet", "parquet", "application/vnd.apache.parquet"),
}


class SnapshotAbandoned(Exception):
    """The snapshot was given up (an erasure waits, or the worker stops); nothing was kept."""


# -- layout -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The columns of one export and where each value comes from."""

    columns: tuple[str, ...]
    #: Per attribute column, the key in the profile's attribute map (read names of
    #: attributes/views.py).
    attribute_keys: tuple[str, ...]
    #: The wanted items that select events (one per event name), or ``None`` (no events).
    items: tuple[WantedItem, ...] | None
    #: Per item: (column index, parameter key) of each parameter column the item fills.
    item_columns: tuple[tuple[tuple[int, str], ...], ...]

    @property
    def event_width(self) -> int:
        return len(self.columns) - 1 - len(self.attribute_keys)


def build_layout(
    attributes: AttributesRequest | None,
    events: EventsRequest | None,
    custom_names: Sequence[str],
) -> Layout:
    """The columns of §3.3.4; ``custom_names`` = the partner's catalogue by name (for ``*``)."""
    if attributes is None:
        keys: list[str] = []
    elif attributes == "*":
        keys = [a.read_name for a in DEFAULT_ATTRIBUTES] + [f"c_{n}" for n in custom_names]
    else:
        keys = [read.key for read in resolve_attribute_names(attributes)]
    columns = ["iid", *(f"a_{key}" for key in keys)]
    items: tuple[WantedItem, ...] | None = None
    item_columns: list[tuple[tuple[int, str], ...]] = []
    if events is not None:
        items = tuple(distinct_wanted(events))
        columns += ["e_event_name", "e_created_date"]
        index_of: dict[str, int] = {}
        for item in items:
            filled: list[tuple[int, str]] = []
            for param in item.params:
                # `source` is a real column (e_source); the others are already there or none.
                if param in NON_PARAMETERS and param != "source":
                    continue
                column = f"e_{param}"
                if column not in index_of:
                    index_of[column] = len(columns)
                    columns.append(column)
                if all(index != index_of[column] for index, _ in filled):
                    filled.append((index_of[column], param))
            item_columns.append(tuple(filled))
    return Layout(tuple(columns), tuple(keys), items, tuple(item_columns))


def partner_custom_names(conn: sqlite3.Connection, partner: str) -> list[str]:
    """Custom attributes and custom identifiers of the catalogue, by name (code-point order)."""
    return [
        str(name)
        for (name,) in conn.execute(
            "SELECT name FROM custom_names WHERE partner = ? ORDER BY name", (partner,)
        )
    ]


# -- rows -------------------------------------------------------------------------------


def iter_profile_chunks(
    conn: sqlite3.Connection, profile_pks: Iterator[int]
) -> Iterator[list[tuple[int, str]]]:
    """(pk, insider_id) of the segment's profiles, in chunks, in the order given.

    ``profile_pks`` is the lazy, ascending-``insider_id`` iterator of
    ``segments.segment_profile_pks``; only one chunk is ever in memory.
    """
    while True:
        pks = list(itertools.islice(profile_pks, CHUNK_PROFILES))
        if not pks:
            return
        marks = ",".join("?" * len(pks))
        iids = dict(
            conn.execute(
                f"SELECT pk, insider_id FROM profiles WHERE pk IN ({marks})",  # noqa: S608 (placeholders)
                pks,
            ).fetchall()
        )
        yield [(pk, str(iids[pk])) for pk in pks if pk in iids]


# Above this many event names, one IN list per chunk gets too long: query per user instead.
_MAX_BATCHED_NAMES = 1000


def _chunk_events(
    conn: sqlite3.Connection, pks: Sequence[int], layout: Layout, events: EventsRequest
) -> dict[int, list[tuple[EventRow, int]]]:
    """Each user's matching events over every item, ascending time then storage order.

    Items with neither filters nor ``limit_per_source`` (the usual case) are read for the
    whole chunk in one query: name and window are all they test. The others go through
    ``events.query.select_events`` per user, so their matching stays E2's.
    """
    assert layout.items is not None
    found: dict[int, list[tuple[EventRow, int]]] = {pk: [] for pk in pks}
    plain = {
        item.event_name: index
        for index, item in enumerate(layout.items)
        if not item.filters and item.limit_per_source is None
    }
    if len(plain) > _MAX_BATCHED_NAMES:
        plain = {}
    if plain:
        low, high = us_bounds(events.start_s, events.end_s)
        pk_marks = ",".join("?" * len(pks))
        name_marks = ",".join("?" * len(plain))
        loads = orjson.loads
        for profile_pk, pk, name, ts_us, source, params, custom in conn.execute(
            "SELECT profile_pk, pk, name, ts_us, source, params, custom FROM events"  # noqa: S608 (placeholders)
            f" WHERE profile_pk IN ({pk_marks}) AND name IN ({name_marks})"
            " AND ts_us BETWEEN ? AND ?",
            (*pks, *plain, low, high),
        ):
            row = EventRow(pk, name, ts_us, source, loads(params), loads(custom))
            found[profile_pk].append((row, plain[name]))
    for index, item in enumerate(layout.items):
        if item.event_name in plain:
            continue
        for pk in pks:
            for row in select_events(
                conn, pk, item, events.start_s, events.end_s, newest_first=False
            ):
                found[pk].append((row, index))
    for rows in found.values():
        if len(rows) > 1:
            rows.sort(key=lambda pair: (pair[0].ts_us, pair[0].pk))
    return found


def iter_rows(
    conn: sqlite3.Connection,
    layout: Layout,
    events: EventsRequest | None,
    profile_pks: Iterator[int],
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_user: Callable[[str], None] = lambda iid: None,
) -> Iterator[list[Any]]:
    """Every row of the file, as JSON values (``None`` = missing), in the order of §3.3.4.

    ``should_stop`` is asked between chunks; when it says so, :class:`SnapshotAbandoned` is
    raised. ``on_user`` is told each ``insider_id`` that gets rows (the file's members).
    """
    width = layout.event_width
    for chunk in iter_profile_chunks(conn, profile_pks):
        if should_stop():
            raise SnapshotAbandoned
        pks = [pk for pk, _ in chunk]
        maps = load_attribute_maps(conn, pks)
        chunk_events = _chunk_events(conn, pks, layout, events) if events is not None else {}
        for pk, iid in chunk:
            on_user(iid)
            attrs = maps[pk]
            base: list[Any] = [iid, *(attrs.get(key) for key in layout.attribute_keys)]
            if events is None:
                yield base
                continue
            found = chunk_events[pk]
            if not found:
                yield base + [None] * width
                continue
            for row, item_index in found:
                values: list[Any] = [None] * width
                values[0] = row.name
                values[1] = _created_date(row.ts_us)
                offset = len(base)
                for column, param in layout.item_columns[item_index]:
                    present, value = lookup_param(row, param)
                    if present:
                        values[column - offset] = value
                yield base + values


# Years 1000 to 9999: where "%04d" and datetime.strftime("%Y") agree.
_FAST_MIN_S = -30_610_224_000
_FAST_MAX_S = 253_402_300_800


def _created_date(ts_us: int) -> str:
    """``timefmt.render_us``, twice as fast: it runs once per exported event.

    >>> _created_date(1_736_544_920_500_000)
    '2025-01-10T21:35:20.5Z'
    """
    seconds, micros = divmod(ts_us, 1_000_000)
    if not _FAST_MIN_S <= seconds < _FAST_MAX_S:
        return render_us(ts_us)
    t = time.gmtime(seconds)
    text = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    if micros:
        text += "." + f"{micros:06d}".rstrip("0")
    return text + "Z"


# -- encodings --------------------------------------------------------------------------


def render_text(value: Any) -> str | None:
    """The CSV rendering of a value (also Parquet's strings); ``None`` when missing.

    Strings verbatim, booleans ``true``/``false``, numbers as JSON (``1`` stays ``1``,
    ``990.9`` stays ``990.9``), arrays and objects as compact JSON.
    """
    return None if value is None else render_value(value)


class RowWriter(Protocol):
    """Writes rows of JSON values to one file; ``finish`` makes it durable, ``abort`` drops it."""

    def write_row(self, row: Sequence[Any]) -> None: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


def _fsync(path: Path) -> None:
    # Any descriptor of the file flushes its data: the file is complete before the rename.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _PlainFileWriter:
    """A writer over one plain file: ``finish`` closes and fsyncs it, ``abort`` removes it."""

    path: Path
    _file: IO[str] | IO[bytes]

    def finish(self) -> None:
        self._file.close()
        _fsync(self.path)

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class _CsvWriter(_PlainFileWriter):
    """UTF-8 without BOM, header row, RFC 4180 quoting, CRLF line ends."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self._file = text = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 (closed in finish/abort)
        self._csv = csv.writer(text, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        self._csv.writerow(columns)

    def write_row(self, row: Sequence[Any]) -> None:
        # Most cells are strings or missing: test those first (render_text does the rest).
        self._csv.writerow(
            [v if type(v) is str else "" if v is None else _dumps(v).decode() for v in row]
        )


class _NdjsonWriter(_PlainFileWriter):
    """One JSON object per line, keys in column order, ``null`` for missing values."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self._columns = tuple(columns)
        self._file = self._lines = open(path, "wb")  # noqa: SIM115 (closed in finish/abort)

    def write_row(self, row: Sequence[Any]) -> None:
        self._lines.write(orjson.dumps(dict(zip(self._columns, row, strict=True))) + b"\n")


class _ParquetWriter:
    """Parquet format version 1.0; every column a nullable UTF-8 string (CSV rendering)."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        import pyarrow as pa  # optional dependency: checked by E3 before a job is accepted
        import pyarrow.parquet as pq

        self.path = path
        self._pa = pa
        self._schema = pa.schema([pa.field(name, pa.string(), nullable=True) for name in columns])
        self._writer = pq.ParquetWriter(str(path), self._schema, version="1.0")
        self._buffer: list[list[str | None]] = [[] for _ in columns]
        self._rows = 0

    def write_row(self, row: Sequence[Any]) -> None:
        for column, value in zip(self._buffer, row, strict=True):
            column.append(render_text(value))
        self._rows += 1
        if self._rows >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        arrays = [self._pa.array(column, type=self._pa.string()) for column in self._buffer]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._schema))
        self._buffer = [[] for _ in self._buffer]
        self._rows = 0

    def finish(self) -> None:
        self._flush()
        self._writer.close()
        _fsync(self.path)

    def abort(self) -> None:
        self._writer.close()
        self.path.unlink(missing_ok=True)


def open_writer(fmt: ExportFormat, path: Path, columns: Sequence[str]) -> RowWriter:
    """A writer of ``fmt`` creating ``path``, header/schema written."""
    if fmt.name == "csv":
        return _CsvWriter(path, columns)
    if fmt.name == "json":
        return _NdjsonWriter(path, columns)
    return _ParquetWriter(path, columns)


def write_export(
    conn: sqlite3.Connection,
    partner: str,
    fmt: ExportFormat,
    attributes: AttributesRequest | None,
    events: EventsRequest | None,
    profile_pks: Iterator[int],
    path: Path,
    ids_path: Path,
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Write one export file from the snapshot ``conn``; return the number of users in it.

    The ``insider_id`` of every user with rows goes to ``ids_path`` (one per line), so the
    publishing transaction can record the file's members without holding them in memory.
    On any exception both files are removed.
    """
    layout = build_layout(attributes, events, partner_custom_names(conn, partner))
    writer = open_writer(fmt, path, layout.columns)
    count = 0
    try:
        with open(ids_path, "w", encoding="utf-8") as ids:

            def on_user(iid: str) -> None:
                nonlocal count
                count += 1
                ids.write(iid + "\n")

            for row in iter_rows(
                conn, layout, events, profile_pks, should_stop=should_stop, on_user=on_user
            ):
                writer.write_row(row)
        writer.finish()
    except BaseException:
        writer.abort()
        ids_path.unlink(missing_ok=True)
        raise
    return count
