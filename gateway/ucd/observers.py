"""The one seam where the rest of the gateway watches UCD calls: ``UcdCallObserver``.

``UcdClient`` reports every attempt that went on the wire (retries included, each is a
call the UCD sees) to each observer it was given, once the attempt is over: which
endpoint, how it ended, how long it took and how many users it carried. Metrics
(gateway/metrics.py) are one observer; tracing can be another, without a second hook in
the client. Attempts that never left (an open circuit, a deadline already passed, no
slot of the gateway's own in time) are not calls and are not reported.

Every value is bounded and free of personal data, so an observer may use it as a label
as it is: ``endpoint`` is one of the paths of ``gateway/ucd/paths.py``; ``status`` is the
HTTP status as text (``"200"``), ``TIMEOUT`` or ``NETWORK_ERROR``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

__all__ = ["NETWORK_ERROR", "TIMEOUT", "UcdCallObserver", "notify"]

#: ``status`` of an attempt whose answer did not come in time.
TIMEOUT: Final = "timeout"
#: ``status`` of an attempt without an answer: refused, reset or dropped connection.
NETWORK_ERROR: Final = "network_error"


class UcdCallObserver(Protocol):
    """Told about each UCD call once it is over. Runs on the event loop inside the
    call's path: it must be quick and must not raise."""

    def on_call(self, endpoint: str, status: str, seconds: float, users: int) -> None:
        """``users``: the users the call carried (E1/E4 batches count each; a call about
        one user is 1; a call about none, such as E10 or an export, is 0)."""
        ...


def notify(
    observers: Sequence[UcdCallObserver], endpoint: str, status: str, seconds: float, users: int
) -> None:
    """Tell every observer, in order."""
    for observer in observers:
        observer.on_call(endpoint, status, seconds, users)
