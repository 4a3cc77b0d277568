"""What the caller may do, decided where it is cheapest and safest for each kind of field.

* **Mutations**, before execution (``operation_refusals``, from the request extension's
  ``on_execute``, next to the operation budget): mutations run one after the other, so
  a check inside the second one's resolver would come after the first one's UCD calls.
  A mutation the caller may not run refuses the whole operation with FORBIDDEN at its
  field, and no UCD call is made. A payload whose ``user`` is selected needs
  ``profile:read`` too, and an export of PII attributes (or of every attribute)
  ``pii:read``: both are reads of what the caller may otherwise not see.
* **Query fields** (``require``), first thing in their resolvers: null with FORBIDDEN at
  the field, the rest answered.
* **PII** inside a ``User``: never asked of the UCD (``restrict`` takes the withheld
  names out of the selection's need before it is pushed down), and FORBIDDEN at each
  field selected (``User.from_ucd`` with the context's ``withheld`` names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import strawberry
from graphql import (
    FieldNode,
    GraphQLError,
    OperationType,
)
from graphql.execution.values import get_argument_values
from graphql.utilities import get_operation_ast
from strawberry.types import ExecutionContext

from gateway.api.context import Context
from gateway.api.root_fields import root_fields
from gateway.api.selection import UserSelection, field_selected
from gateway.api.strawberry_internals import graphql_core_schema
from gateway.auth.principal import Principal
from gateway.auth.scopes import FIELD_SCOPES, Scope
from gateway.errors import Forbidden
from gateway.ucd.names import canonical_read_name

__all__ = ["forbidden", "operation_refusals", "require", "restrict"]

Info = strawberry.Info[Context, Any]

_EVERY_SCOPE = frozenset(Scope)


def forbidden(what: str, scope: Scope) -> Forbidden:
    return Forbidden(f"{what} needs the {scope.value} scope", scope=scope.value)


def require(info: Info, type_name: str) -> None:
    """Raises FORBIDDEN unless the caller holds the scope of this root field (a context
    not built for a request has no caller, and may do nothing)."""
    scope = FIELD_SCOPES[(type_name, info.field_name)]
    context = info.context
    if not isinstance(context, Context) or not context.principal.may(scope):
        raise forbidden(info.field_name, scope)


def restrict(selection: UserSelection, withheld: frozenset[str]) -> UserSelection:
    """``selection`` without the ``withheld`` attributes: what is pushed down to the UCD.

    "Every attribute" and ``identifiers`` cannot be served without reading PII, so they
    ask for nothing here (their resolvers answer FORBIDDEN).
    """
    if not withheld:
        return selection
    need = selection.need
    attributes = frozenset() if need.all_attributes else frozenset(need.attributes) - withheld
    return UserSelection(replace(need, attributes=attributes), identifiers=False)


def operation_refusals(context: ExecutionContext) -> list[GraphQLError]:
    """One FORBIDDEN per mutation field the caller may not run; empty for queries (and
    for operations execution refuses itself: no such operation, bad variables)."""
    document = context.graphql_document
    assert document is not None
    operation = get_operation_ast(document, context.operation_name)
    if operation is None or operation.operation is not OperationType.MUTATION:
        return []
    value = context.context
    # A context of another kind was not built for a request: it may do nothing.
    principal: Principal | None = value.principal if isinstance(value, Context) else None
    withheld: frozenset[str] = value.withheld if isinstance(value, Context) else frozenset()
    if principal is not None and principal.scopes == _EVERY_SCOPE:
        return []  # nothing to refuse: no second coercion of a 1,000-user upsert's variables
    found = root_fields(
        graphql_core_schema(context.schema), document, context.operation_name, context.variables
    )
    if found is None:
        return []
    root = found.root
    errors: list[GraphQLError] = []
    for key, nodes in found.fields.items():
        name = nodes[0].name.value
        own = FIELD_SCOPES.get(("Mutation", name))
        if own is None:
            continue  # __typename
        field_scope = found.scope(nodes)
        needed = [(name, own)]
        payload = root.fields[name].type
        while hasattr(payload, "of_type"):
            payload = payload.of_type
        payload_name = getattr(payload, "name", "")
        if field_selected(field_scope, type_name=payload_name, field_name="user"):
            needed.append((f"{name} {{ user }}", Scope.PROFILE_READ))
        if name == "startExport" and _exports_pii(
            get_argument_values(root.fields[name], nodes[0], found.variables)["input"],
            withheld,
        ):
            needed.append(("an export of PII attributes (or of every attribute)", Scope.PII_READ))
        for what, needs in needed:
            if principal is None or not principal.may(needs):
                errors.append(_refusal(forbidden(what, needs), nodes, key))
                break
    return errors


def _exports_pii(raw: Mapping[str, Any], withheld: frozenset[str]) -> bool:
    """True when an export's input (GraphQL names) would write any withheld attribute.

    Without either list the UCD exports every attribute (the contract), PII included.
    """
    if not withheld:
        return False
    names: Sequence[str] | None = raw.get("attributes")
    custom: Sequence[str] | None = raw.get("customAttributes")
    if names is None and custom is None:
        return True
    wanted = {canonical_read_name(n) for n in names or ()}
    wanted |= {canonical_read_name(n, custom=True) for n in custom or ()}
    return bool(wanted & withheld)


def _refusal(error: Forbidden, nodes: Sequence[FieldNode], key: str) -> GraphQLError:
    return GraphQLError(
        error.message,
        nodes=list(nodes),
        path=[key],
        original_error=error,
        extensions=dict(error.extensions),
    )
