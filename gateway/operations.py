"""Every GraphQL operation observed once: metrics, the request's log fields, a log line.

``observe_operations(metrics)`` is a strawberry schema extension factory. Its
``on_operation`` wraps parse, validation and execution; when the operation is over it
records, under the bounded operation label of ``GatewayMetrics.names``:

* ``ucd_gateway_operations_total`` and the duration histogram (gateway/metrics.py);
* the request's ``operation``, ``operation_type``, ``duration_ms`` and ``outcome``
  (gateway/request_context.py), which every later log line of the request carries;
* one INFO line on ``gateway.operations``: ``query GetUser: OK in 3.1 ms``.

The outcome is ``OK`` or the code of the first error, as the answer will carry it
(``error_pipeline.code_of``). Nothing of the document's text or variables is recorded.

Put first in the schema's extensions: strawberry leaves the hooks in reverse order, so
this one sees the errors after the gateway's extension has masked them.

The compiled execution path (gateway/compiled/), which runs no strawberry hook, observes
its operations with ``ObserveOperations.observing``: the same record, and an operation
it hands to graphql-core inside is not observed a second time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Final

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from gateway.error_codes import ErrorCode
from gateway.error_pipeline import code_of
from gateway.metrics import GatewayMetrics
from gateway.request_context import current_request

__all__ = [
    "OK",
    "UNKNOWN_TYPE",
    "ObserveOperations",
    "Observed",
    "Observing",
    "observe_operations",
]

logger = logging.getLogger("gateway.operations")

#: The outcome of an operation without errors.
OK: Final = "OK"
#: The type of an operation whose document did not parse or does not define it.
UNKNOWN_TYPE: Final = "unknown"


#: True inside ``ObserveOperations.observing``: the operation is observed there already.
_observed: ContextVar[bool] = ContextVar("gateway_operation_observed", default=False)


def observe_operations(metrics: GatewayMetrics) -> ObserveOperations:
    """A factory strawberry calls once per operation."""
    return ObserveOperations(metrics)


@dataclass(frozen=True)
class ObserveOperations:
    """The schema extension's factory; the compiled path finds it on the schema."""

    metrics: GatewayMetrics

    def __call__(self) -> SchemaExtension:
        return _OperationObserver(self.metrics)

    def observing(self, name: str | None, kind: str) -> Observing:
        """Observes one operation run outside strawberry's hooks: ``name`` is its name in
        the document, ``kind`` its type; the ``Observed`` its ``with`` yields is given its
        errors."""
        return Observing(self.metrics, name, kind)


class Observed:
    """The outcome of an operation under ``observing``: BAD_REQUEST unless answered, as
    for an operation strawberry raised past."""

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome = ErrorCode.BAD_REQUEST.value

    def answered(self, errors: Sequence[GraphQLError] | None) -> None:
        self.outcome = _outcome_of(errors)


class Observing:
    """``ObserveOperations.observing``'s context manager. A class rather than a
    ``contextlib.contextmanager``: it runs on every compiled read, and a generator-based
    manager costs a generator, a wrapper object and two ``next`` calls more."""

    __slots__ = ("_kind", "_metrics", "_name", "_observed", "_started", "_token")

    def __init__(self, metrics: GatewayMetrics, name: str | None, kind: str) -> None:
        self._metrics = metrics
        self._name = name
        self._kind = kind
        self._observed = Observed()
        self._started = 0.0
        self._token: Token[bool] | None = None

    def __enter__(self) -> Observed:
        self._started = time.perf_counter()
        self._token = _observed.set(True)
        return self._observed

    def __exit__(self, *exc_info: object) -> None:
        seconds = time.perf_counter() - self._started
        if self._token is not None:
            _observed.reset(self._token)
        label = self._metrics.names.label(self._name, in_document=True)
        _record(self._metrics, label, self._kind, self._observed.outcome, seconds)


def _outcome_of(errors: Sequence[GraphQLError] | None) -> str:
    return code_of(errors[0]).value if errors else OK


def _record(metrics: GatewayMetrics, name: str, kind: str, outcome: str, seconds: float) -> None:
    metrics.on_operation(name, kind, outcome, seconds)
    duration_ms = round(seconds * 1000, 3)
    info = current_request()
    if info is not None:
        info.operation, info.operation_type = name, kind
        info.duration_ms, info.outcome = duration_ms, outcome
    logger.info("%s %s: %s in %.1f ms", kind, name, outcome, duration_ms)


class _OperationObserver(SchemaExtension):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def on_operation(self) -> Iterator[None]:
        if _observed.get():  # the compiled path handed its operation over: observed there
            yield
            return
        started = time.perf_counter()
        # Strawberry raised past the operation: the view refuses it with BAD_REQUEST.
        outcome = ErrorCode.BAD_REQUEST.value
        try:
            yield
            outcome = self._outcome()
        except GraphQLError as error:
            # A syntax error from the parser cache leaves through here; strawberry
            # answers it as the error it is.
            outcome = code_of(error).value
            raise
        finally:
            self._record(outcome, time.perf_counter() - started)

    def _outcome(self) -> str:
        context = self.execution_context
        errors = context.pre_execution_errors
        if not errors and context.result is not None:
            errors = context.result.errors
        return _outcome_of(errors)

    def _record(self, outcome: str, seconds: float) -> None:
        name, kind = self._name_and_type()
        _record(self._metrics, name, kind, outcome, seconds)

    def _name_and_type(self) -> tuple[str, str]:
        """The operation's label and type, from its document (not the caller's text)."""
        context = self.execution_context
        document = context.graphql_document
        wanted = context.operation_name
        if document is not None:
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                name = definition.name.value if definition.name else None
                if wanted is None or name == wanted:
                    label = self._metrics.names.label(name, in_document=True)
                    return label, definition.operation.value
        return self._metrics.names.label(wanted or "", in_document=False), UNKNOWN_TYPE
