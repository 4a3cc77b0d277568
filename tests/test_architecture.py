"""The shape docs/architecture.md describes, checked against the code's own imports.

Read as text (``ast``), nothing is imported or run, so a broken module fails here with
its name rather than with an import error somewhere else. Each test names the rule it
keeps; when one fails, the message lists every offending place.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGE: Final = ROOT / "gateway"
SPEC: Final = ROOT / "docs" / "ucd-rest-api.md"

#: The only two places that may speak the UCD's wire format: the client side and the
#: local UCD that implements it.
WIRE_PACKAGES: Final = ("gateway.ucd", "gateway.local_ucd")

#: Keys of the UCD's JSON bodies and answers (docs/ucd-rest-api.md §3). GraphQL's own
#: response keys (``data``, ``errors``, ``message``, ``extensions``) are not among them.
WIRE_KEYS: Final = frozenset(
    {
        "insider_id",
        "identifiers",
        "attributes",
        "events",
        "start_date",
        "end_date",
        "wanted",
        "event_name",
        "params",
        "limit_per_source",
        "event_params",
        "users",
        "skip_hook",
        "append",
        "not_append",
        "whole",
        "partial",
        "custom",
        "segment",
        "segment_id",
        "format",
        "hook",
        "old_identifier",
        "new_identifier",
        "table",
        "successful",
        "fail",
        "count",
        "created_date",
        "timestamp",
        "source",
        "email",
        "phone_number",
        "uuid",
        "iid",
        "url",
        "filters",
        "quota",
    }
)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        found[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8")))
    return found


MODULES: Final = _modules()


def _imports(module: Module) -> Iterator[str]:
    """Every gateway module ``module`` imports, wherever the import statement stands
    (top level, under ``TYPE_CHECKING``, inside a function): a cycle is a cycle."""
    is_package = module.path.name == "__init__.py"
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            # ``from gateway.ucd import client`` imports the module gateway.ucd.client.
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    yield f"{target}.{alias.name}"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, module in MODULES.items():
        graph[name] = {t for t in _imports(module) if t in MODULES and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _inside(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in packages)


def test_the_import_graph_has_no_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a two-module and a three-module circle are both found."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]


#: The layers of docs/architecture.md, bottom first: a module may import from its own
#: layer group and from lower ranks only. A package counts as one group.
LAYERS: Final[dict[str, int]] = {
    "error_codes": 0,
    "accepting": 0,
    "errors": 1,
    "settings": 1,
    "listening": 1,
    "tuning": 1,
    "loop_lag": 1,
    "in_flight_limit": 1,
    "tracing": 1,
    "request_context": 1,
    "logs": 2,
    "metrics": 3,
    "operations": 4,
    "audit": 1,
    "partner_quota": 3,
    "error_pipeline": 2,
    "ucd": 2,
    "state": 2,
    "reads": 3,
    "upserts": 3,
    "exports": 3,
    "catalog": 3,
    "shared_breakers": 3,
    "local_ucd": 3,
    "auth": 3,
    "rate_limits": 3,
    "api": 4,
    "embedded": 4,
    "seed": 4,
    "document_limits": 4,
    "document_shape": 4,
    "document_text": 4,
    "limits": 5,
    "request_bodies": 5,
    "load_shedding": 5,
    "persisted": 5,
    "graphql_over_http": 5,
    "graphiql": 5,
    "compiled": 5,
    "cors": 5,
    "app": 6,
    "drain": 6,
    "workers": 6,
    "cli": 7,
    "__main__": 8,
}


def _group(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_module_has_a_layer() -> None:
    assert sorted({_group(n) for n in MODULES} - {"gateway"} - set(LAYERS)) == []


def test_imports_point_down_the_layers() -> None:
    wrong = sorted(
        f"{MODULES[name].where} ({_group(name)}) imports {target} ({_group(target)})"
        for name, targets in _graph().items()
        for target in targets
        if _group(name) != _group(target)
        and target != "gateway"
        and LAYERS[_group(name)] <= LAYERS[_group(target)]
    )
    assert wrong == []


#: The contract's own rules and vocabulary, standard library only: both sides use them, so
#: the gateway and the local UCD cannot disagree on what an identifier or a name is.
SHARED_WITH_THE_LOCAL_UCD: Final = ("gateway.ucd.rules", "gateway.ucd.names")


def test_the_local_ucd_imports_only_itself_and_the_shared_rules() -> None:
    """The local UCD stands alone (it runs as its own server); it shares with the
    gateway only the contract's rules and names."""
    graph = _graph()
    wrong = {
        f"{MODULES[name].where} imports {target}"
        for name, targets in graph.items()
        if _inside(name, ("gateway.local_ucd",))
        for target in targets
        if not _inside(target, ("gateway.local_ucd", *SHARED_WITH_THE_LOCAL_UCD))
        and target not in ("gateway", "gateway.ucd")
    }
    assert sorted(wrong) == []


def test_the_shared_rules_and_names_need_only_the_standard_library() -> None:
    wrong = sorted(
        f"{MODULES[name].where} imports {target}"
        for name in SHARED_WITH_THE_LOCAL_UCD
        for target in _imports(MODULES[name])
        if target.split(".")[0] == "gateway" or target.startswith(".")
    )
    assert wrong == []


def test_the_ucd_client_does_not_import_the_layers_above_it() -> None:
    """gateway/ucd knows the wire and the gateway's errors and settings, nothing above;
    and the one tracing seam (gateway/tracing.py, which imports nothing of the gateway)."""
    allowed = ("gateway.ucd", "gateway.errors", "gateway.settings", "gateway.tracing")
    wrong = {
        f"{MODULES[name].where} imports {target}"
        for name, targets in _graph().items()
        if _inside(name, ("gateway.ucd",))
        for target in targets
        if not _inside(target, allowed) and target != "gateway"
    }
    assert sorted(wrong) == []


def test_tracing_imports_nothing_of_the_gateway() -> None:
    """gateway/ucd calls it, so it must stay below every layer that could import ucd."""
    assert sorted(_graph()["gateway.tracing"]) == []


def test_no_production_module_imports_a_testing_helper() -> None:
    wrong = {
        f"{MODULES[name].where} imports {target}"
        for name, targets in _graph().items()
        for target in targets
        if target.rsplit(".", 1)[-1] in ("testing", "conftest") or target.startswith("tests")
    }
    assert sorted(wrong) == []
    assert not [m.where for m in MODULES.values() if m.path.stem in ("testing", "conftest")]


#: GraphQL names that are also UCD body keys, where a module uses them as GraphQL names:
#: (module, literal) -> why. Keep it short; real wire knowledge belongs in gateway/ucd.
GRAPHQL_NAMES: Final[dict[tuple[str, str], str]] = {
    # The selection walk reads GraphQL selections and argument maps, keyed by the schema's
    # field and argument names.
    ("gateway.api.selection", "identifiers"): "the User.identifiers field",
    ("gateway.api.selection", "attributes"): "the User.attributes field",
    ("gateway.api.selection", "events"): "the User.events field and its arguments",
    ("gateway.api.selection", "custom"): "the custom: argument of attribute() and param()",
    # The operation budget counts the users of users(keys) and of list inputs.
    ("gateway.api.budget", "users"): "the users field and the users of mutation inputs",
    # Query.catalog's two lists, each read from its own E10 table.
    ("gateway.api.catalog", "attributes"): "the Catalog.attributes field",
    ("gateway.api.catalog", "events"): "the Catalog.events field",
    # The compiled path reads documents by the schema's field and argument names.
    ("gateway.compiled.plan", "users"): "the Query.users field",
    ("gateway.compiled.plan", "events"): "the User.events field",
    ("gateway.compiled.plan", "timestamp"): "the Event.timestamp field",
    ("gateway.compiled.plan", "source"): "the Event.source field",
    ("gateway.compiled.execution", "users"): "the Query.users field",
    ("gateway.compiled.execution", "events"): "the User.events field",
    ("gateway.compiled.serializer", "events"): "the User.events field",
    ("gateway.compiled.serializer", "timestamp"): "the Event.timestamp field",
    ("gateway.compiled.serializer", "source"): "the Event.source field",
    # Input checks name the input field at fault in a path or a message.
    ("gateway.api.validation", "email"): "IdentifierInput.email, named in the error path",
    ("gateway.api.validation", "uuid"): "IdentifierInput.uuid, named in the error path",
    ("gateway.api.validation", "params"): "EventInput.params, named in the error message",
    ("gateway.api.validation", "custom"): "the custom field of EventInput and AttributesInput",
    # Authorization names the fields it guards.
    ("gateway.auth.scopes", "users"): "the Query.users field, in the table of field scopes",
    ("gateway.api.types", "identifiers"): "User.identifiers, named in its FORBIDDEN message",
    ("gateway.api.authorization", "attributes"): "ExportInput.attributes, read from the input",
    # The audit trail names the users of mutation inputs.
    ("gateway.api.audit_trail", "users"): "the users of upsertUsers and deleteAttributes inputs",
}


def _wire_uses(module: Module) -> Iterator[str]:
    """UCD paths anywhere, and UCD body keys where they act as keys or values of a body:
    in a dict display (as a key), a subscript, the first argument of
    ``.get``/``.pop``/``.setdefault``, a positional argument of any call, an element of a
    tuple, list or set display, or a comparison (``x == "events"``, ``x in ("whole",)``).
    ``GRAPHQL_NAMES`` lets a module use a literal that is one of its GraphQL names."""

    def key(node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if value in WIRE_KEYS and (module.name, value) not in GRAPHQL_NAMES:
                return value
        return None

    for node in ast.walk(module.tree):
        line = getattr(node, "lineno", 0)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.search(r"/api/(user|raw|contact|local)/", node.value)
        ):
            yield f"{module.where}:{line}: UCD path {node.value!r}"
        elif isinstance(node, ast.Dict):
            for k in node.keys:
                if (found := key(k)) is not None:
                    yield f"{module.where}:{line}: body key {found!r} in a dict"
        elif isinstance(node, ast.Subscript):
            if (found := key(node.slice)) is not None:
                yield f"{module.where}:{line}: body key {found!r} in a subscript"
        elif isinstance(node, ast.Call):
            for arg in node.args:
                if (found := key(arg)) is not None:
                    yield f"{module.where}:{line}: body key {found!r} as a call argument"
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            for element in node.elts:
                if (found := key(element)) is not None:
                    yield f"{module.where}:{line}: body key {found!r} in a display"
        elif isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                if (found := key(operand)) is not None:
                    yield f"{module.where}:{line}: body key {found!r} in a comparison"


def test_only_the_wire_packages_know_ucd_paths_and_body_keys() -> None:
    wrong = [
        use
        for name, module in MODULES.items()
        if not _inside(name, WIRE_PACKAGES)
        for use in _wire_uses(module)
    ]
    assert wrong == []


def test_every_graphql_name_allowed_is_used_and_explained() -> None:
    """An entry of ``GRAPHQL_NAMES`` that no longer matches a literal of its module is
    stale, and each says why the literal is a GraphQL name there."""
    literals = {
        (name, node.value)
        for name, module in MODULES.items()
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert sorted(set(GRAPHQL_NAMES) - literals) == []
    assert all(reason.strip() for reason in GRAPHQL_NAMES.values())
    assert all(literal in WIRE_KEYS for _, literal in GRAPHQL_NAMES)


def test_the_wire_check_sees_paths_and_keys() -> None:
    """The check above can fail: each kind of use is found in a sample module."""
    source = (
        'P = "/api/user/v1/profile"\n'
        'b = {"insider_id": 1}\n'
        'x = b["identifiers"]\n'
        'y = b.get("events")\n'
        'z = {"data": 1, "errors": []}\n'
        'f("whole")\n'
        'k = ("event_name", "data")\n'
        'l = ["timestamp"]\n'
        's = {"partial"}\n'
        'c = x == "attributes"\n'
        'd = x in ("custom", "data")\n'
        'e = g(name="events", key=b)\n'
    )
    sample = Module("sample", ROOT / "sample.py", ast.parse(source))
    found = [use.split(": ", 1)[1] for use in _wire_uses(sample)]
    assert found == [
        "UCD path '/api/user/v1/profile'",
        "body key 'insider_id' in a dict",
        "body key 'identifiers' in a subscript",
        "body key 'events' as a call argument",
        "body key 'whole' as a call argument",
        "body key 'event_name' in a display",
        "body key 'timestamp' in a display",
        "body key 'partial' in a display",
        "body key 'attributes' in a comparison",
        "body key 'custom' in a display",
    ]
    # An allowed GraphQL name passes in its own module only.
    graphql = ast.parse('x == "events"\ny == "whole"\n')
    allowed = Module("gateway.api.selection", ROOT / "selection.py", graphql)
    assert [use.split(": ", 1)[1] for use in _wire_uses(allowed)] == [
        "body key 'whole' in a comparison"
    ]


def _spec_sections() -> set[str]:
    sections: set[str] = set()
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#{2,4} (\d+(?:\.\d+)*)\.? ", line)
        if match:
            sections.add(match.group(1))
    return sections


@pytest.mark.parametrize("folder", ["gateway", "tests", "bench"])
def test_every_section_cited_is_in_the_repository_spec(folder: str) -> None:
    """Every ``§3.2.4`` in the code names a section of docs/ucd-rest-api.md."""
    sections = _spec_sections()
    missing = sorted(
        f"{path.relative_to(ROOT)}: §{number}"
        for path in (ROOT / folder).rglob("*.py")
        for number in set(re.findall(r"§ ?(\d+(?:\.\d+)*)", path.read_text(encoding="utf-8")))
        if number not in sections
    )
    assert missing == []


#: Documents the code once cited that no checkout has: the team's shared folder sits
#: beside the repository only on the team's machines. Their texts live in docs/.
OUTSIDE_DOCUMENTS: Final = re.compile(r"shared/(ucd-rest-api|perf-notes)|TEAM\.md|LOCAL\.md")


def test_no_module_points_at_a_document_outside_the_repository() -> None:
    """The spec and the performance notes are cited in docs/, which every checkout has."""
    wrong = sorted(
        f"{path.relative_to(ROOT)}"
        for folder in ("gateway", "tests", "bench")
        for path in [*(ROOT / folder).rglob("*.py"), *(ROOT / folder).rglob("*.md")]
        if path != Path(__file__).resolve()
        and OUTSIDE_DOCUMENTS.search(path.read_text(encoding="utf-8"))
    )
    assert wrong == []


@pytest.mark.parametrize("name", ["ucd-rest-api.md", "perf-notes.md"])
def test_the_documents_in_docs_are_the_shared_ones(name: str) -> None:
    shared = ROOT.parent / "shared" / name
    if not shared.exists():
        pytest.skip("no ../shared beside this checkout")
    assert (ROOT / "docs" / name).read_bytes() == shared.read_bytes()
