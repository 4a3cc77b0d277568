"""How the gateway's processes log: level, format, request fields, and no line twice.

``configure_logging(level, format)`` (called by the command line, once) puts one handler
on the root logger, to stderr, and makes every other logger propagate to it: uvicorn's
own handlers are removed, so no line is written by two handlers (uvicorn's start and stop
lines used to print once through its handler and once through the root's). Formats:

* ``text``: ``time LEVEL logger request-id: message`` (``-`` outside a request);
* ``json``: one object per line with ``time``, ``level``, ``logger``, ``message``,
  ``request_id``, and, on lines of a request whose operation has run, ``operation``,
  ``operation_type``, ``duration_ms`` and ``outcome`` (gateway/request_context.py).

The embedded local UCD's uvicorn server runs in the gateway's process and would log
under uvicorn's names too; ``embedded_server_context()`` marks its task, and
``LocalUcdLines`` (installed by ``install_local_ucd_lines``) renames its access lines to
``local_ucd.access`` and drops its start and stop lines, which would repeat the
gateway's server's ("Started server process", "Shutting down" ...); its warnings and
errors stay, as ``local_ucd.server``.

What reaches a line stays free of personal data by the filters of gateway/app.py (access
paths redacted, strawberry's error lines dropped) and because the request fields are
bounded labels (gateway/operations.py) or a checked id.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from gateway.request_context import current_request

__all__ = [
    "LocalUcdLines",
    "configure_logging",
    "embedded_server_context",
    "install_local_ucd_lines",
]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(request_id)s: %(message)s"
#: The request's fields a JSON line carries, when known.
_REQUEST_FIELDS: Final = ("operation", "operation_type", "duration_ms", "outcome")
#: Loggers that log often at INFO about things other lines already say.
_QUIET: Final = {"httpx": logging.WARNING, "httpcore": logging.WARNING}


class RequestFields(logging.Filter):
    """Puts the running request's id and operation fields on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = current_request()
        if info is None:
            record.request_id = "-"
            return True
        fields = record.__dict__
        fields["request_id"] = info.request_id
        if info.operation is not None:  # the four are set together (gateway/operations.py)
            fields["operation"] = info.operation
            fields["operation_type"] = info.operation_type
            fields["duration_ms"] = info.duration_ms
            fields["outcome"] = info.outcome
        return True


class _Seconds:
    """The formatted part of a timestamp down to the second, made once per second: a
    strftime (or a datetime) per line is a good part of what a line costs, and a busy
    gateway writes hundreds of lines in the same second."""

    __slots__ = ("_render", "_second", "_text")

    def __init__(self, render: Callable[[int], str]) -> None:
        self._render = render
        self._second = -1
        self._text = ""

    def __call__(self, second: int) -> str:
        if second != self._second:
            self._text = self._render(second)
            self._second = second
        return self._text


def _local_seconds(second: int) -> str:
    return time.strftime(logging.Formatter.default_time_format, time.localtime(second))


def _utc_seconds(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, as ``logging.Formatter(TEXT_FORMAT)`` writes it (local time,
    ``2026-01-05 10:00:00,123``), with the time's seconds formatted once per second."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._seconds = _Seconds(_local_seconds)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        record.message = record.getMessage()
        record.asctime = f"{self._seconds(int(record.created))},{int(record.msecs):03d}"
        return TEXT_FORMAT % record.__dict__


class JsonFormatter(logging.Formatter):
    """One JSON object per line; exceptions as one string field, never a second line."""

    def __init__(self) -> None:
        super().__init__()
        self._seconds = _Seconds(_utc_seconds)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id(record),
        }
        fields = record.__dict__
        if "operation" in fields:
            for name in _REQUEST_FIELDS:
                value = fields.get(name)
                if value is not None:
                    line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()

    def _time(self, created: float) -> str:
        """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``:
        rounded to the microsecond as datetime rounds, then cut to the millisecond."""
        second = int(created)
        micros = round((created - second) * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        return f"{self._seconds(second)}.{micros // 1000:03d}+00:00"


def _request_id(record: logging.LogRecord) -> str | None:
    value = getattr(record, "request_id", None)
    return value if isinstance(value, str) and value != "-" else None


def configure_logging(level: str, log_format: str) -> None:
    """Root logger: one stderr handler at ``level`` in ``log_format`` ("text" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestFields())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    # Neither format shows where a line was logged from, nor the thread or process: the
    # record need not look them up (a frame walk and three calls per line; the logging
    # HOWTO's "Optimization"). Two lines per request (the access line, the operation's).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, root.level))


# --- the embedded local UCD's server -------------------------------------------------------

_embedded: contextvars.ContextVar[bool] = contextvars.ContextVar("embedded_ucd", default=False)


def embedded_server_context() -> contextvars.Context:
    """A context whose tasks (the server's, and the connections it accepts) log as the
    embedded local UCD; run its ``serve()`` task in it."""
    context = contextvars.copy_context()
    context.run(_embedded.set, True)
    return context


class LocalUcdLines(logging.Filter):
    """The embedded local UCD's uvicorn lines under its own names (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _embedded.get():
            return True
        if record.name == "uvicorn.access":
            record.name = "local_ucd.access"
            return True
        if record.levelno < logging.WARNING:
            return False
        record.name = "local_ucd.server"
        return True


def install_local_ucd_lines() -> None:
    """Once per process: on the two loggers uvicorn's server and protocols log to."""
    for name in ("uvicorn.error", "uvicorn.access"):
        target = logging.getLogger(name)
        if not any(isinstance(f, LocalUcdLines) for f in target.filters):
            target.addFilter(LocalUcdLines())
