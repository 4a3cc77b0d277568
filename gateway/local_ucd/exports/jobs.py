"""The ``export_jobs`` table (§3.3.3): job records, their queries, expiry and URLs.

Job states: ``queued`` -> ``ready`` | ``failed``; a ready job's row is deleted when it
expires or is withdrawn by an erasure, so its URL answers 404. ``hook_state`` is
``pending`` -> ``delivered`` | ``gave_up``. ``export_members`` lists the users of a
published file so that an erasure can find it (§4.9 step 3).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "EXPIRY_US",
    "ExportJob",
    "delete_job",
    "export_url",
    "load_job",
    "oldest_queued",
    "pending_deliveries",
    "published_files",
]

#: A ready file is served for 24 hours (§3.3.3).
EXPIRY_US = 24 * 3600 * 1_000_000


@dataclass(frozen=True)
class ExportJob:
    """One row of ``export_jobs``."""

    id: int
    partner: str
    request: dict[str, Any]
    hook: str
    status: str
    file_name: str | None
    ready_us: int | None
    hook_state: str


_JOB_COLUMNS = "id, partner, request, hook, status, file_name, ready_us, hook_state"


def _job_from_row(row: Sequence[Any]) -> ExportJob:
    id_, partner, request, hook, status, file_name, ready_us, hook_state = row
    return ExportJob(
        id_, partner, orjson.loads(request), hook, status, file_name, ready_us, hook_state
    )


def export_url(base_url: str, partner: str, file_name: str) -> str:
    """The download link of a file (§3.3.3): ``<public base>/exports/<partner>/p/<file>``."""
    return f"{base_url}/exports/{partner}/p/{file_name}"


def load_job(conn: sqlite3.Connection, job_id: int) -> ExportJob | None:
    row = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM export_jobs WHERE id = ?",  # noqa: S608 (constant columns)
        (job_id,),
    ).fetchone()
    return None if row is None else _job_from_row(row)


def oldest_queued(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        "SELECT id FROM export_jobs WHERE status = 'queued' ORDER BY id LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])


def pending_deliveries(conn: sqlite3.Connection) -> list[ExportJob]:
    return [
        _job_from_row(row)
        for row in conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM export_jobs"  # noqa: S608 (constant columns)
            " WHERE status = 'ready' AND hook_state = 'pending' ORDER BY id"
        )
    ]


def published_files(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    return {
        (str(partner), str(name))
        for partner, name in conn.execute(
            "SELECT partner, file_name FROM export_jobs WHERE status = 'ready'"
        )
    }


def delete_job(conn: sqlite3.Connection, job_id: int) -> None:
    # Members first (explicitly, not only by cascade): they name users of the file.
    conn.execute("DELETE FROM export_members WHERE job_id = ?", (job_id,))
    conn.execute("DELETE FROM export_jobs WHERE id = ?", (job_id,))
