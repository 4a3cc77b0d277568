"""Outbound POSTs of the local UCD: export webhooks (§3.3.3) and error callbacks (§4.6).

Both follow one delivery rule: up to 3 attempts, waiting 1 s and then 2 s between them,
10 s timeout per attempt, any 2xx is success.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from gateway.local_ucd.http import dumps

__all__ = ["DELAYS_S", "post_with_retries"]

logger = logging.getLogger("gateway.local_ucd.hooks")

#: Waits between attempts: 3 attempts in all.
DELAYS_S: tuple[float, ...] = (1.0, 2.0)
TIMEOUT_S = 10.0


async def post_with_retries(
    client: httpx.AsyncClient,
    url: str,
    payload: Any,
    *,
    delays: Sequence[float] = DELAYS_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """POST ``payload`` as JSON; return whether some attempt got a 2xx."""
    attempts = len(delays) + 1
    for attempt in range(attempts):
        try:
            response = await client.post(
                url,
                content=dumps(payload),
                headers={"Content-Type": "application/json"},
                timeout=TIMEOUT_S,
            )
            if 200 <= response.status_code < 300:
                return True
            # The URL may carry a capability token: log the status, never the URL.
            logger.warning(
                "hook attempt %d/%d answered %d", attempt + 1, attempts, response.status_code
            )
        except httpx.HTTPError as exc:
            logger.warning(
                "hook attempt %d/%d failed: %s", attempt + 1, attempts, type(exc).__name__
            )
        if attempt < len(delays):
            await sleep(delays[attempt])
    return False
