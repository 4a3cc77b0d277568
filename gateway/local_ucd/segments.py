"""TEMPORARY placeholder written by the lead so the app imports; its owner replaces it."""

from __future__ import annotations

from typing import Any

from gateway.local_ucd.http import UNKNOWN_ERROR, ApiError
from gateway.local_ucd.services import UcdRequest


async def handle_create_segment(req: UcdRequest) -> Any:
    raise ApiError(500, UNKNOWN_ERROR)


async def handle_list_segments(req: UcdRequest) -> Any:
    raise ApiError(500, UNKNOWN_ERROR)
