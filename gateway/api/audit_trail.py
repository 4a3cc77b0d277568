"""What the audit trail records of an operation, and when (gateway/audit.py writes it).

Three kinds of line, each one JSON object: ``time`` (RFC 3339, UTC), ``requestId``
(gateway/request_context.py), ``principal`` (the key's id or the token's ``sub``;
``anonymous`` without authentication), ``operation`` (the GraphQL operation's name, or
null), ``field``, ``phase``, ``insiderIds``, ``outcome`` and ``code``:

* **a mutation** (``startExport`` included), per root field: an ``attempt`` line
  *before* the operation executes, then an ``outcome`` line (``ok``, ``error`` or, for a
  mutation refused before execution, ``refused``, with its ``code``) before the answer
  is sent. The attempt line decides: when it cannot be written, the operation is refused
  with AUDIT_UNAVAILABLE and no UCD call is made, so nothing changes without a trace.
  An outcome line that cannot be written is logged (without its content) and the answer
  stands: the change has happened, its attempt line records it, and an error now would
  make the caller repeat a write that was done.
* **an export's link** (``exportJob``): one ``read`` line, as for PII below.
* **a read of PII** (gateway/auth/pii.py), per operation and attribute actually answered:
  one ``read`` line whose ``field`` is the attribute's read name (``email``,
  ``phone_number``, ``c_loyalty_card``) and ``insiderIds`` the users whose value was in
  the answer. Written after execution, before the answer; when it cannot be written,
  the answer is withheld (``data`` null, AUDIT_UNAVAILABLE): no PII leaves untraced.

Group-committed writes (gateway/upserts.py) share a UCD call, not a line: each mutation
has its own lines.

**insiderIds never hold PII.** A user named by its ``insiderId`` is that id. A user named
by email, phone number, uuid or custom identifier is ``hmac:`` and the first 32 hex of
an HMAC-SHA256 of the identifier (email normalised) under ``UCD_GATEWAY_AUDIT_HASH_KEY``
(else the UCD token): the UCD's write answers (E1, E4, identity, anonymize, delete) do not
return the insider_id, and reading it first would cost a UCD call per user. The same
identifier gives the same hash, so an auditor holding the key can tell whether a given
email was touched, and nobody without it can reverse one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from graphql import GraphQLError, OperationType
from graphql.execution.values import get_argument_values
from graphql.utilities import get_operation_ast
from strawberry.types import ExecutionContext

from gateway.api.context import Context
from gateway.api.names import KEY_FIELDS
from gateway.api.root_fields import root_fields
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.audit import AuditUnavailable
from gateway.auth.pii import pii_read_names
from gateway.error_pipeline import audit_unavailable
from gateway.reads.need import ProfileNeed
from gateway.request_context import current_request_id
from gateway.ucd.answers import ProfileAnswer
from gateway.ucd.names import CUSTOM, EMAIL, INSIDER_ID, PHONE_NUMBER, UUID
from gateway.ucd.rules import normalise_email

__all__ = ["OperationTrail", "note_pii_read", "subject"]

logger = logging.getLogger("gateway.audit")

#: Root query fields whose answer is audited as a read: an export's download link.
_AUDITED_QUERIES: Final = frozenset({"exportJob"})


def subject(raw: Mapping[str, Any], key: bytes) -> str:
    """The audit name of the user a ``UserKey`` or ``IdentifierInput`` (GraphQL names,
    as graphql-core coerced them) names: its insiderId, or a keyed hash (module doc)."""
    insider_id = raw.get(KEY_FIELDS[INSIDER_ID])
    if insider_id:
        return str(insider_id)
    email = raw.get(KEY_FIELDS[EMAIL])
    custom = raw.get(KEY_FIELDS[CUSTOM]) or ()
    if isinstance(custom, Mapping):  # IdentifierInput: one custom identifier
        custom = (custom,)
    named = [
        normalise_email(email) if isinstance(email, str) else None,
        raw.get(KEY_FIELDS[PHONE_NUMBER]),
        raw.get(KEY_FIELDS[UUID]),
        sorted([str(c.get("name")), str(c.get("value"))] for c in custom),
    ]
    digest = hmac.new(key, orjson.dumps(named), hashlib.sha256).hexdigest()
    return f"hmac:{digest[:32]}"


def _keys(items: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [item["key"] for item in items]


#: The users each mutation names, from its coerced arguments (GraphQL names).
_SUBJECTS: Final[Mapping[str, Callable[[Mapping[str, Any]], list[Mapping[str, Any]]]]] = {
    "upsertUsers": lambda args: _keys(args["input"]["users"]),
    "deleteAttributes": lambda args: _keys(args["users"]),
    "deletePii": lambda args: [args["key"]],
    "deleteUser": lambda args: [args["key"]],
    "updateIdentifier": lambda args: [args["old"]],
    "deleteIdentifier": lambda args: [args["identifier"]],
    "startExport": lambda args: [],
}


#: The PII answered by the operation being executed: read name -> insiderIds. A
#: ContextVar, not the Context: the operations of a batch share one Context and run
#: concurrently, each in its own task, where ``OperationTrail`` sets its own.
_pii_reads: ContextVar[dict[str, set[str]] | None] = ContextVar("audit_pii_reads", default=None)


def note_pii_read(context: Context, profile: ProfileAnswer, need: ProfileNeed) -> None:
    """Remember the PII values ``profile`` answers for ``need``, for the read lines."""
    reads = _pii_reads.get()
    if reads is None:
        return  # not inside an audited operation
    pii = pii_read_names(context.settings.pii_attributes) & profile.attributes.keys()
    if not need.all_attributes:
        pii &= need.attributes  # type: ignore[operator]  # a frozenset unless all
    insider_id = profile.insider_id
    for name in pii:
        if profile.attributes[name] is not None:
            reads.setdefault(name, set()).add(insider_id or "unknown")


def _code(errors: Sequence[GraphQLError]) -> str | None:
    for error in errors:
        code = (error.extensions or {}).get("code")
        if isinstance(code, str):
            return code
    return None


class OperationTrail:
    """The audit lines of one operation (see the module doc); built before it executes."""

    def __init__(self, context: ExecutionContext, gateway: Context) -> None:
        assert gateway.audit is not None
        self._audit = gateway.audit
        self._gateway = gateway
        self._context = context
        self._operation = context.operation_name
        key = gateway.settings.audit_hash_key or gateway.settings.token
        self._key = key.get_secret_value().encode()
        # Root fields to audit, by response key: (field name, subjects).
        self.fields: dict[str, tuple[str, list[str]]] = {}
        self.mutation = False
        self._attempted = False
        self._reads: dict[str, set[str]] = {}
        _pii_reads.set(self._reads)  # this operation's task: see _pii_reads
        self._find_fields()

    @classmethod
    def of(cls, context: ExecutionContext) -> OperationTrail | None:
        """The trail of an operation, or None without an audit log (or a gateway context)."""
        gateway = context.context
        if not isinstance(gateway, Context) or gateway.audit is None:
            return None
        return cls(context, gateway)

    def _find_fields(self) -> None:
        document = self._context.graphql_document
        if document is None:
            return
        operation = get_operation_ast(document, self._context.operation_name)
        if operation is None:
            return
        self.mutation = operation.operation is OperationType.MUTATION
        found = root_fields(
            graphql_core_schema(self._context.schema),
            document,
            self._context.operation_name,
            self._context.variables,
        )
        if found is None:
            return
        root = found.root
        for key, nodes in found.fields.items():
            name = nodes[0].name.value
            if self.mutation and name in _SUBJECTS:
                args = get_argument_values(root.fields[name], nodes[0], found.variables)
                named = [subject(raw, self._key) for raw in _SUBJECTS[name](args)]
                self.fields[key] = (name, named)
            elif not self.mutation and name in _AUDITED_QUERIES:
                self.fields[key] = (name, [])

    def _line(
        self, field: str, phase: str, insider_ids: Iterable[str], outcome: str, code: str | None
    ) -> dict[str, Any]:
        return {
            "time": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "requestId": current_request_id(),
            "principal": self._gateway.principal.id,
            "operation": self._operation,
            "field": field,
            "phase": phase,
            "insiderIds": sorted(insider_ids),
            "outcome": outcome,
            "code": code,
        }

    async def before(self) -> GraphQLError | None:
        """Writes the attempt lines of a mutation; the refusal when they cannot be."""
        if not self.mutation or not self.fields:
            return None
        lines = [
            self._line(name, "attempt", named, "attempted", None)
            for name, named in self.fields.values()
        ]
        try:
            await self._audit.write(lines)
        except AuditUnavailable as exc:
            logger.error("%s; the operation is refused", exc)
            return audit_unavailable()
        self._attempted = True
        return None

    async def after(self) -> None:
        """Writes the outcome and read lines once the operation has its result."""
        result = self._context.result
        errors: Sequence[GraphQLError] = (result.errors or []) if result is not None else []
        data = result.data if result is not None else None
        lines: list[dict[str, Any]] = []
        for key, (name, named) in self.fields.items():
            own = [e for e in errors if e.path and e.path[0] == key]
            if self.mutation and not self._attempted:
                outcome = "refused"
                own = own or [e for e in errors if not e.path]
            elif own or data is None or (self.mutation and data.get(key) is None):
                outcome = "error"  # a payload is non-null: null is an error's doing
            else:
                outcome = "ok"
            phase = "outcome" if self.mutation else "read"
            code = None if outcome == "ok" else _code(own or errors)
            lines.append(self._line(name, phase, named, outcome, code))
        for name, insider_ids in sorted(self._reads.items()):
            lines.append(self._line(name, "read", insider_ids, "ok", None))
        if not lines:
            return
        try:
            await self._audit.write(lines)
        except AuditUnavailable as exc:
            if self.mutation and self._attempted:
                logger.error("%s; the mutation's attempt line stands for it", exc)
            elif result is not None and data is not None:
                logger.error("%s; the answer is withheld", exc)
                result.data = None
                result.errors = [audit_unavailable()]
