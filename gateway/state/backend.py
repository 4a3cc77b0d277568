"""Which ``StateStore`` a gateway uses: Redis when ``UCD_GATEWAY_REDIS_URL`` is set,
else this process's memory with its file in the local data folder."""

from __future__ import annotations

from collections.abc import Callable

from gateway.settings import Settings
from gateway.state.memory import FILE_NAME, MemoryState
from gateway.state.protocol import StateStore
from gateway.state.redis import RedisState

__all__ = ["open_state"]


def open_state(settings: Settings, *, time_left: Callable[[], float | None]) -> StateStore:
    """The configured backend; ``time_left`` is the operation deadline's remaining seconds."""
    if settings.redis_url is not None:
        return RedisState(
            settings.redis_url.get_secret_value(),
            timeout=settings.redis_timeout,
            max_connections=settings.redis_max_connections,
            time_left=time_left,
        )
    return MemoryState(settings.local_ucd_data_dir / FILE_NAME)
