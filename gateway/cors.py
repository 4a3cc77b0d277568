"""Which browser pages may call the gateway (CORS), and why other sites cannot make it act.

``UCD_GATEWAY_CORS_ORIGINS`` lists exact origins; none by default. Starlette's
``CORSMiddleware`` answers their preflights (before authentication: a preflight carries
no credential) and marks the answers to them, 401s included, as readable by those pages.
Credentials travel in the ``Authorization`` header, never in cookies, so no
``Access-Control-Allow-Credentials``.

Cross-site request forgery has nothing to ride on: a page of another site cannot set
``Authorization`` without a preflight these origins would have to allow, a form can only
POST ``text/plain``, ``multipart/form-data`` or ``application/x-www-form-urlencoded``,
which ``/graphql`` refuses with 415 (``gateway.request_bodies``), and a GET never runs a
mutation (400). tests/gateway/test_cors.py holds all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

__all__ = ["cors_options"]

#: How long a browser may keep a preflight's answer, seconds.
_PREFLIGHT_MAX_AGE: Final = 600


def cors_options(origins: Sequence[str]) -> dict[str, Any]:
    """The keyword arguments of Starlette's ``CORSMiddleware`` for ``origins``."""
    return {
        "allow_origins": list(origins),
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["Authorization", "Content-Type", "Accept"],
        # OVERLOADED and RATE_LIMITED answers say when to retry in this header too.
        "expose_headers": ["Retry-After"],
        "allow_credentials": False,
        "max_age": _PREFLIGHT_MAX_AGE,
    }
