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
        record.request_id = info.request_id
        for name in _REQUEST_FIELDS:
            value = getattr(info, name)
            if value is not None:
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; exceptions as one string field, never a second line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id(record),
        }
        for name in _REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def _request_id(record: logging.LogRecord) -> str | None:
    value = getattr(record, "request_id", None)
    return value if isinstance(value, str) and value != "-" else None


def configure_logging(level: str, log_format: str) -> None:
    """Root logger: one stderr handler at ``level`` in ``log_format`` ("text" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestFields())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
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
