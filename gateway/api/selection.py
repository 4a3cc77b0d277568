"""Selection push-down: what a ``User`` selection needs from the UCD, as a ``ProfileNeed``.

A pure function of the operation (field nodes, fragments, variables) and the clock.
It walks the selection the way graphql-core's executor does: fragments and inline
fragments are expanded when their type condition matches, ``@skip``/``@include`` are
evaluated with the operation's variables, aliases are ignored (two aliases of
``attribute`` are two attributes), and arguments are coerced with graphql-core's own
``get_argument_values`` so defaults, variables and the DateTime scalar behave exactly as
they will in the resolvers.

Why not strawberry's ``info.selected_fields``: it neither evaluates ``@skip``/``@include``
nor coerces arguments (a DateTime variable stays a string, defaults are missing).

Example: ``{ user(key: $k) { email gdprOptin ...F  attribute(name: "tier", custom: true)
{ value } events(names: ["purchase"]) { productId param(name: "gift", custom: true) } } }``
with ``fragment F on User { locale }`` needs attributes ``{email, gdpr, lo, c_tier}`` and
events ``{purchase: {product_id, c_gift}}`` over the last 30 days.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.execution.values import VariableValues, get_argument_values
from strawberry import Info

from gateway.api.names import EVENT_FIELD_PARAMS, USER_FIELD_READ_NAMES
from gateway.api.strawberry_internals import raw_info
from gateway.api.types import check_last, event_window
from gateway.reads.need import ProfileNeed
from gateway.ucd.names import (
    ALL_ATTRIBUTES,
    EMAIL,
    IID,
    PHONE_NUMBER,
    UUID,
    canonical_read_name,
    custom_read_name,
)
from gateway.ucd.requests import UserRef
from gateway.ucd.times import epoch_seconds

__all__ = [
    "FieldScope",
    "UserSelection",
    "field_selected",
    "response_fields",
    "subfield_scope",
    "user_selection",
]

#: The identifier views every ``identifiers`` selection reads (§3.2.3).
_IDENTIFIER_KEYS = frozenset({EMAIL, PHONE_NUMBER, UUID})


@dataclass(frozen=True)
class UserSelection:
    """The need of one ``User`` selection; ``identifiers`` adds key-dependent names."""

    need: ProfileNeed
    identifiers: bool = False

    def need_for(self, ref: UserRef) -> ProfileNeed:
        """The need for one key: ``identifiers`` reads the custom names the key used."""
        if not self.identifiers:
            return self.need
        names = _IDENTIFIER_KEYS | {custom_read_name(name) for name, _ in ref.custom}
        return self.need.merge(ProfileNeed(attributes=frozenset(names)))


@dataclass(frozen=True)
class FieldScope:
    """A field where it stands in its operation: all a selection walk reads.

    ``field_nodes`` are the nodes of one response key; ``variables`` are coerced.
    """

    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    field_nodes: Sequence[FieldNode]

    @classmethod
    def of(cls, info: Info[Any, Any]) -> FieldScope:
        """The scope of the field ``info`` resolves.

        strawberry's ``Info`` does not expose the field nodes and fragments publicly; the
        graphql-core info under it is what its own ``selected_fields`` reads.
        """
        raw = raw_info(info)
        return cls(raw.schema, raw.fragments, info.variable_values, raw.field_nodes)


class _Walk:
    def __init__(self, scope: FieldScope) -> None:
        self.fragments = scope.fragments
        # graphql-core 3.3 wants its VariableValues container; strawberry hands resolvers
        # the plain coerced dict. Sources only matter for fragment arguments (unused).
        self.variables = VariableValues(sources={}, coerced=dict(scope.variables))
        user = scope.schema.type_map["User"]
        event = scope.schema.type_map["Event"]
        assert isinstance(user, GraphQLObjectType)
        assert isinstance(event, GraphQLObjectType)
        self.user = user
        self.event = event

    def included(self, node: FieldNode | FragmentSpreadNode | InlineFragmentNode) -> bool:
        for directive in node.directives or ():
            name = directive.name.value
            if name == GraphQLSkipDirective.name:
                if get_argument_values(GraphQLSkipDirective, directive, self.variables)["if"]:
                    return False
            elif (
                name == GraphQLIncludeDirective.name
                and not get_argument_values(GraphQLIncludeDirective, directive, self.variables)[
                    "if"
                ]
            ):
                return False
        return True

    def fields(
        self,
        selection_set: SelectionSetNode | None,
        type_name: str,
        seen: frozenset[str] = frozenset(),
    ) -> Iterator[FieldNode]:
        """The fields of a selection set on ``type_name``, fragments expanded."""
        if selection_set is None:
            return
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                if self.included(node):
                    yield node
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                if self.included(node) and (condition is None or condition.name.value == type_name):
                    yield from self.fields(node.selection_set, type_name, seen)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if (
                    fragment is not None
                    and name not in seen  # validation forbids cycles; this keeps us safe
                    and fragment.type_condition.name.value == type_name
                    and self.included(node)
                ):
                    yield from self.fields(fragment.selection_set, type_name, seen | {name})

    def grouped(
        self, selection_sets: Iterable[SelectionSetNode | None], type_name: str
    ) -> dict[str, list[FieldNode]]:
        """The fields of ``selection_sets`` on ``type_name`` by response key, as
        graphql-core's executor collects them: each named fragment is expanded once,
        however often it is spread, so the walk is linear in the document."""
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            if selection_set is not None:
                self._collect(selection_set, type_name, grouped, visited)
        return grouped

    def _collect(
        self,
        selection_set: SelectionSetNode,
        type_name: str,
        grouped: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        # A method, not a closure calling itself: such a closure is a reference cycle
        # (function -> cell -> function), and with it this walk and the operation's
        # variables would wait for the cyclic collector (tests/gateway/test_garbage.py).
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                if self.included(node):
                    key = node.alias.value if node.alias else node.name.value
                    grouped.setdefault(key, []).append(node)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                if self.included(node) and (condition is None or condition.name.value == type_name):
                    self._collect(node.selection_set, type_name, grouped, visited)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                if name in visited or not self.included(node):
                    continue
                visited.add(name)
                fragment = self.fragments.get(name)
                if fragment is not None and fragment.type_condition.name.value == type_name:
                    self._collect(fragment.selection_set, type_name, grouped, visited)

    def args(self, field: GraphQLField, node: FieldNode) -> dict[str, Any]:
        return get_argument_values(field, node, self.variables)


def user_selection(scope: FieldScope, *, now: datetime) -> UserSelection:
    """The need of the ``User`` the field of ``scope`` selects.

    Raises ``BadUserInput`` for ``events(...)`` arguments no UCD call can serve
    (``from`` after ``to``, a negative ``last``), so they cost no call.
    """
    walk = _Walk(scope)
    attributes: set[str] = set()
    everything = False
    identifiers = False
    need = ProfileNeed()
    user_fields = walk.user.fields
    for user_node in scope.field_nodes:
        for node in walk.fields(user_node.selection_set, "User"):
            name = node.name.value
            read_name = USER_FIELD_READ_NAMES.get(name)
            if read_name is not None:
                attributes.add(read_name)
            elif name == "identifiers":
                identifiers = True
            elif name == "attribute":
                args = walk.args(user_fields[name], node)
                attributes.add(canonical_read_name(args["name"], custom=args["custom"]))
            elif name == "attributes":
                args = walk.args(user_fields[name], node)
                names, custom_names = args.get("names"), args.get("customNames")
                if names is None and custom_names is None:
                    everything = True
                else:
                    attributes.update(canonical_read_name(n) for n in names or ())
                    attributes.update(
                        canonical_read_name(n, custom=True) for n in custom_names or ()
                    )
            elif name == "events":
                need = need.merge(_events_need(walk, node, now))
            # insiderId (iid comes with every answer) and __typename need nothing.
    attributes.discard(IID)
    # No attribute is named "*", but the UCD would read it among names as "every
    # attribute" (§3.2.3): only ``attributes`` without names may ask for that.
    attributes.discard(ALL_ATTRIBUTES)
    return UserSelection(
        need.merge(ProfileNeed(attributes=ALL_ATTRIBUTES if everything else frozenset(attributes))),
        identifiers,
    )


def _events_need(walk: _Walk, node: FieldNode, now: datetime) -> ProfileNeed:
    args = walk.args(walk.user.fields["events"], node)
    # Bad arguments fail the whole User field here, before any UCD call: the UCD would
    # refuse start_date > end_date (§3.2.2), and a negative last has no meaning.
    check_last(args.get("last"))
    since, until = event_window(now, args.get("from"), args.get("to"))
    names: list[str] = args["names"]
    if not names or args.get("last") == 0:
        return ProfileNeed()
    params: set[str] = set()
    event_fields = walk.event.fields
    for sub in walk.fields(node.selection_set, "Event"):
        name = sub.name.value
        param = EVENT_FIELD_PARAMS.get(name)
        if param is not None:
            params.add(param)
        elif name == "param":
            sub_args = walk.args(event_fields[name], sub)
            param_name = sub_args["name"]
            params.add(custom_read_name(param_name) if sub_args["custom"] else param_name)
    wanted = frozenset(params)
    # Floored (gateway.ucd.times.epoch_seconds): a superset of [from, to] the resolvers trim.
    window = (epoch_seconds(since), epoch_seconds(until))
    event_names = sorted(set(names))
    last: int | None = args.get("last")
    return ProfileNeed(
        events=tuple((n, wanted) for n in event_names),
        window=window,
        # A bound the loader may push down as limit_per_source (ProfileNeed.limits).
        lasts=() if last is None else tuple((n, last, window) for n in event_names),
    )


def subfield_scope(scope: FieldScope, *, type_name: str, field_name: str) -> FieldScope | None:
    """The scope of ``field_name`` of ``type_name`` under the field of ``scope``; None
    when it is not selected (fragments expanded, ``@skip``/``@include`` evaluated).

    Mutations use it to check and plan their payload's ``user`` before the change: to
    refuse its bad arguments before anything irreversible happens, and to skip work only
    that ``user`` needs (looking up an insider_id before the identifier that finds the
    user is deleted).
    """
    walk = _Walk(scope)
    nodes = [
        node
        for field_node in scope.field_nodes
        for node in walk.fields(field_node.selection_set, type_name)
        if node.name.value == field_name
    ]
    if not nodes:
        return None
    return FieldScope(scope.schema, scope.fragments, scope.variables, nodes)


def response_fields(
    scope: FieldScope, *, type_name: str, selection_set: SelectionSetNode | None = None
) -> dict[str, list[FieldNode]]:
    """The fields selected on ``type_name`` under the field of ``scope`` (or, given
    ``selection_set``, in it: an operation's root), by response key, with the nodes of
    each key: what graphql-core resolves once per key. ``@skip``/``@include`` are
    evaluated and each named fragment is expanded once (linear in the document).
    """
    walk = _Walk(scope)
    if selection_set is not None:
        return walk.grouped([selection_set], type_name)
    return walk.grouped([node.selection_set for node in scope.field_nodes], type_name)


def field_selected(scope: FieldScope, *, type_name: str, field_name: str) -> bool:
    """True when ``field_name`` of ``type_name`` is selected under the field of ``scope``."""
    return subfield_scope(scope, type_name=type_name, field_name=field_name) is not None
