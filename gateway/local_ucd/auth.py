"""Partner authentication (§2.2): the checks in order, the first failure answers."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from starlette.datastructures import Headers

from gateway.local_ucd.config import PARTNER_NAME_RE
from gateway.local_ucd.http import ACCESS_DENIED, ApiError, message_error

__all__ = ["EMPTY_PARTNER", "EMPTY_TOKEN", "PARTNER_INVALID", "authenticate"]

EMPTY_PARTNER = message_error("Empty Partner")
EMPTY_TOKEN = message_error("Empty Token")
PARTNER_INVALID = message_error("Partner is invalid.")


def authenticate(headers: Headers, partners: Mapping[str, tuple[str, ...]]) -> str:
    """Return the partner named by the request headers, or raise the §2.2 answer."""
    # Starlette's Headers are case-insensitive; h11/httptools already strip surrounding
    # whitespace, and we strip again for in-process transports.
    partner = headers.get("x-partner-name", "").strip()
    token = headers.get("x-request-token", "").strip()
    if not partner:
        raise ApiError(400, EMPTY_PARTNER)
    if not token:
        raise ApiError(400, EMPTY_TOKEN)
    if not PARTNER_NAME_RE.match(partner):
        raise ApiError(400, PARTNER_INVALID)
    accepted = partners.get(partner, ())
    # Compare against every accepted token in constant time, so the answer's timing says
    # nothing about which token or how much of it matched.
    matched = False
    for candidate in accepted:
        matched |= hmac.compare_digest(candidate.encode(), token.encode())
    if not matched:
        raise ApiError(403, ACCESS_DENIED)
    return partner
