"""How big a parsed GraphQL document may be, measured in one linear pass.

A document is small on the wire and can still be huge once its fragments are expanded:

    fragment F0 on User { name }
    fragment F1 on User { ...F0 ...F0 }      # 2 fields
    ...
    fragment F20 on User { ...F19 ...F19 }   # 1,048,576 fields, in 853 bytes

Whatever walks such a document spread by spread (graphql-core's validation rules,
strawberry's depth and alias limiters) works for seconds to minutes, and the event loop,
``/healthz`` included, with it. ``DocumentLimits.check`` measures the document without
expanding anything: every definition is walked once, and a fragment's figures (its
fields, aliases and depth) are computed once and added wherever it is spread. It runs
right after parsing and before any validation rule, so a refused document costs one
pass over its text and nothing else.

What it measures, each against a limit of the settings:

* **fields**: fields selected after fragment expansion, over every operation and every
  fragment no definition spreads (``UCD_GATEWAY_MAX_FIELDS``). The same limit holds the
  pairs graphql-core's OverlappingFieldsCanBeMerged compares in one selection set (inline
  fragments flattened): fields under one response name, and fragments spread side by
  side. 800 ``__typename`` are 319,600 pairs, over its own budget ("Validation aborted."
  after ~80 ms); 700 fragments spread side by side, 244,650 pairs, took it 1.3 s;
* **depth**: the nesting of fields per operation, a root field being 0 deep, as
  strawberry's QueryDepthLimiter counts (``UCD_GATEWAY_MAX_QUERY_DEPTH``). Introspection
  counts too; under ``__schema`` and ``__type`` the limit is at least the depth of the
  full introspection query (GraphiQL's and graphql-core's is 14 deep);
* **aliases**: aliased fields after fragment expansion, over the operations, as
  strawberry's MaxAliasesLimiter counts (``UCD_GATEWAY_MAX_ALIASES``);
* **directives**: directives written in the document (``UCD_GATEWAY_MAX_DIRECTIVES``);
* **cycles**: a fragment that spreads itself, directly or not, is refused here, with one
  error, before anything can follow the cycle.

Unknown fragments count as empty: graphql-core's validation names them.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_introspection_query,
    parse,
)

__all__ = ["DocumentLimits", "DocumentSize", "measure"]

#: Counts stop growing here. A fragment bomb of 100,000 levels would otherwise make
#: Python add 100,000-bit integers at every level; past this, "over" is all that matters.
CEILING: Final = 10**15

#: A depth not reached by any field (a definition without fields of that kind).
_NONE: Final = -1


@dataclass
class _Figures:
    """What one definition selects: its own fields plus, through ``spreads``, its fragments'."""

    fields: int = 0
    aliases: int = 0
    # Deepest field under a root field that is not introspection, and under one that is.
    plain_depth: int = _NONE
    introspection_depth: int = _NONE
    # (fragment name, level, kind of the root field above it: None at the top).
    spreads: list[tuple[str, int, bool | None]] = field(default_factory=list)


@dataclass(frozen=True)
class DocumentSize:
    """The figures ``DocumentLimits`` compares with its limits; see ``measure``."""

    fields: int
    #: What makes the most pairs to compare in one selection set, and how many it makes.
    most_repeated: tuple[str, int]
    #: Pairs graphql-core compares: fields sharing a response name, and fragments spread
    #: side by side, within one selection set (inline fragments flattened).
    repeated_pairs: int
    #: Each operation's name ("anonymous" without one), its depth outside and inside
    #: introspection.
    depths: tuple[tuple[str, int, int], ...]
    aliases: int
    directives: int
    #: A cycle of fragment spreads, first name repeated last (empty: none).
    cycle: tuple[str, ...]


def measure(document: DocumentNode) -> DocumentSize:
    """The figures of ``document`` in time linear in its size, fragments never expanded.

    >>> size = measure(parse("fragment F on User { name } { a: user { ...F ...F } }"))
    >>> size.fields, size.aliases, size.depths
    (3, 1, (('anonymous', 1, -1),))
    """
    directives = 0
    most_repeated = ("", 0)
    repeated_pairs = 0
    own: dict[str, _Figures] = {}
    operations: list[tuple[str, _Figures]] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            walk = _walk(definition.selection_set)
            directives += walk.directives + len(definition.directives or ())
            directives += sum(
                len(variable.directives or ())
                for variable in getattr(definition, "variable_definitions", None) or ()
            )
            repeated_pairs += walk.repeated_pairs
            if walk.most_repeated[1] > most_repeated[1]:
                most_repeated = walk.most_repeated
            if isinstance(definition, FragmentDefinitionNode):
                own[definition.name.value] = walk.figures
            else:
                name = definition.name.value if definition.name else "anonymous"
                operations.append((name, walk.figures))

    order, cycle = _fragments_in_spread_order(own)
    expanded: dict[str, _Figures] = {}
    if not cycle:
        for name in order:
            expanded[name] = _expand(own[name], expanded)
    spread_somewhere = {s[0] for figures in own.values() for s in figures.spreads}
    spread_somewhere.update(s[0] for _, figures in operations for s in figures.spreads)
    totals = [_expand(figures, expanded) for _, figures in operations]
    fields = sum(t.fields for t in totals) + sum(
        figures.fields for name, figures in expanded.items() if name not in spread_somewhere
    )
    return DocumentSize(
        fields=min(fields, CEILING),
        most_repeated=most_repeated,
        repeated_pairs=repeated_pairs,
        depths=tuple(
            (name, t.plain_depth, t.introspection_depth)
            for (name, _), t in zip(operations, totals, strict=True)
        ),
        aliases=min(sum(t.aliases for t in totals), CEILING),
        directives=directives,
        cycle=cycle,
    )


@dataclass
class _Walk:
    figures: _Figures
    directives: int = 0
    repeated_pairs: int = 0
    most_repeated: tuple[str, int] = ("", 0)

    def repeated(self, what: str, count: int) -> None:
        """``count`` things graphql-core compares pairwise, ``what`` in a message."""
        pairs = count * (count - 1) // 2
        self.repeated_pairs += pairs
        if pairs > self.most_repeated[1]:
            self.most_repeated = (what, pairs)


def _walk(selection_set: SelectionSetNode) -> _Walk:
    """One definition's own figures, its spreads left unexpanded. Iterative: the parser
    allows deep nesting, Python's stack is shallower."""
    figures = _Figures()
    walk = _Walk(figures)
    # (selection set, level of its fields, kind of the root field above: None at the top)
    stack: list[tuple[SelectionSetNode, int, bool | None]] = [(selection_set, 0, None)]
    while stack:
        top, level, introspection = stack.pop()
        # One group of fields as graphql-core's OverlappingFieldsCanBeMerged sees it: the
        # selection set with its inline fragments flattened into it.
        names: Counter[str] = Counter()
        spread_names: set[str] = set()
        group = [top]
        while group:
            for selection in group.pop().selections:
                walk.directives += len(selection.directives or ())
                if isinstance(selection, FieldNode):
                    figures.fields += 1
                    if selection.alias:
                        figures.aliases += 1
                    names[(selection.alias or selection.name).value] += 1
                    kind = introspection
                    if kind is None:  # a root field: introspection if __schema, __type...
                        kind = selection.name.value.startswith("__")
                    if kind:
                        figures.introspection_depth = max(figures.introspection_depth, level)
                    else:
                        figures.plain_depth = max(figures.plain_depth, level)
                    if selection.selection_set:
                        stack.append((selection.selection_set, level + 1, kind))
                elif isinstance(selection, InlineFragmentNode):
                    group.append(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    spread_names.add(selection.name.value)
                    figures.spreads.append((selection.name.value, level, introspection))
        for name, count in names.items():
            walk.repeated(f"selects {name!r} {count:,} times", count)
        # Every two fragments spread side by side are compared, whatever they select.
        walk.repeated(f"spreads {len(spread_names):,} fragments", len(spread_names))
    return walk


def _fragments_in_spread_order(
    fragments: dict[str, _Figures],
) -> tuple[list[str], tuple[str, ...]]:
    """The fragments, each after those it spreads, or the first cycle of spreads found.

    A depth-first walk with an explicit stack: a chain of 100,000 fragments is legal text.
    """
    order: list[str] = []
    done: set[str] = set()
    for root in fragments:
        if root in done:
            continue
        path = [root]
        on_path = {root}
        pending = [iter(fragments[root].spreads)]
        while pending:
            for spread, _, _ in pending[-1]:
                if spread not in fragments or spread in done:
                    continue
                if spread in on_path:
                    return order, (*path[path.index(spread) :], spread)
                path.append(spread)
                on_path.add(spread)
                pending.append(iter(fragments[spread].spreads))
                break
            else:
                pending.pop()
                name = path.pop()
                on_path.discard(name)
                done.add(name)
                order.append(name)
    return order, ()


def _expand(figures: _Figures, expanded: dict[str, _Figures]) -> _Figures:
    """``figures`` with every spread's expanded figures added (spreads of unknown
    fragments add nothing)."""
    total = _Figures(
        figures.fields, figures.aliases, figures.plain_depth, figures.introspection_depth
    )
    for name, level, introspection in figures.spreads:
        fragment = expanded.get(name)
        if fragment is None:
            continue
        total.fields = min(total.fields + fragment.fields, CEILING)
        total.aliases = min(total.aliases + fragment.aliases, CEILING)
        if introspection is None:  # spread at the top: its root fields keep their kind
            plain, inner = fragment.plain_depth, fragment.introspection_depth
        else:
            deepest = max(fragment.plain_depth, fragment.introspection_depth)
            plain, inner = (_NONE, deepest) if introspection else (deepest, _NONE)
        if plain != _NONE:
            total.plain_depth = max(total.plain_depth, level + plain)
        if inner != _NONE:
            total.introspection_depth = max(total.introspection_depth, level + inner)
    return total


@functools.cache
def full_introspection_query() -> str:
    """graphql-core's introspection query with every option on: what GraphiQL asks."""
    return get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )


@functools.cache
def introspection_depth() -> int:
    """The depth of the full introspection query (the deepest ``ofType`` chain a client
    like GraphiQL asks for): 14."""
    return max(depth for _, _, depth in measure(parse(full_introspection_query())).depths)


@dataclass(frozen=True)
class DocumentLimits:
    """The limits of the settings of the same names; ``check`` refuses with one error."""

    max_fields: int
    max_query_depth: int
    max_aliases: int
    max_directives: int

    def check(self, document: DocumentNode) -> GraphQLError | None:
        """The one error refusing ``document``, or None. Without a code: the error
        pipeline codes it as any validation error (GRAPHQL_VALIDATION_FAILED)."""
        message = self.refusal(measure(document))
        return None if message is None else GraphQLError(message)

    def refusal(self, size: DocumentSize) -> str | None:
        """Why a document of ``size`` is refused, or None; the first limit it breaks."""
        if size.cycle:
            return (
                f"fragment {size.cycle[0]!r} spreads itself "
                f"({' -> '.join(size.cycle)}); fragment spreads must not form a cycle"
            )
        if size.fields > self.max_fields:
            return (
                f"the document selects {_count(size.fields)} fields after fragment "
                f"expansion; the limit is {self.max_fields} (UCD_GATEWAY_MAX_FIELDS)"
            )
        if size.repeated_pairs > self.max_fields:
            what, pairs = size.most_repeated
            return (
                f"the document {what} in one selection set, {pairs:,} pairs to compare; "
                f"the limit is {self.max_fields} (UCD_GATEWAY_MAX_FIELDS)"
            )
        introspection_limit = max(self.max_query_depth, introspection_depth())
        for name, plain, inner in size.depths:
            if plain > self.max_query_depth:
                return (
                    f"'{name}' exceeds maximum operation depth of {self.max_query_depth}: "
                    f"it is {plain} deep (UCD_GATEWAY_MAX_QUERY_DEPTH)"
                )
            if inner > introspection_limit:
                return (
                    f"'{name}' exceeds maximum operation depth of {introspection_limit} "
                    f"under introspection: it is {inner} deep (UCD_GATEWAY_MAX_QUERY_DEPTH, "
                    f"at least {introspection_depth()} for introspection)"
                )
        if size.aliases > self.max_aliases:
            return (
                f"{_count(size.aliases)} aliases found. Allowed: {self.max_aliases} "
                "(UCD_GATEWAY_MAX_ALIASES)"
            )
        if size.directives > self.max_directives:
            return (
                f"the document has {size.directives:,} directives; the limit is "
                f"{self.max_directives} (UCD_GATEWAY_MAX_DIRECTIVES)"
            )
        return None


def _count(number: int) -> str:
    return f"over {CEILING - 1:,}" if number >= CEILING else f"{number:,}"
