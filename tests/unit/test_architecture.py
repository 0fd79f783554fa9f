"""The import graph of `assistantd` points one way.

Every import under `src/assistantd` is read with `ast`, including those inside functions
and under `if TYPE_CHECKING:` (an import a type checker sees is still an edge). The tests
fail on an import cycle, on `core/` (the ground floor) importing any other package of
`assistantd`, and on an `assistantd` import that is not at the top of its module unless
`DEFERRED` below names it with its reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "src" / "assistantd"

#: The only `assistantd` imports allowed inside a function (or under TYPE_CHECKING), as
#: (importer, imported or "*"): why each is there.
DEFERRED: dict[tuple[str, str], str] = {
    (
        "assistantd.llm.router",
        "assistantd.llm.llama_cpp",
    ): "the llama.cpp backend (the optional `local` extra) is loaded only when a route uses it",
    (
        "assistantd.cli",
        "*",
    ): "each command imports what it runs: `assistantd --help` or `keys list` would otherwise "
    "load the whole app (about 1.5 s instead of 0.3 s)",
}


def _listed(e: Edge) -> bool:
    return (e.source, e.target) in DEFERRED or (e.source, "*") in DEFERRED


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    deferred: bool  # inside a function or under `if TYPE_CHECKING:`


def _module_name(path: Path) -> str:
    parts = ("assistantd", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts).removesuffix(".__init__")


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement of a module, and whether it is deferred."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, deferred))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, True)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), True)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), deferred)
            else:
                visit(child, deferred)

    visit(tree, False)
    return found


def _edges(modules: dict[str, Path]) -> list[Edge]:
    edges: dict[Edge, None] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node, deferred in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                # `from pkg import mod` imports the module; `from mod import name` the module.
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]  # `import a.b.c` of a name inside a.b
                if target in modules and target != name:
                    edges[Edge(name, target, node.lineno, deferred)] = None
    return list(edges)


def _cycles(modules: dict[str, Path], edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for e in edges:
        graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


MODULES = _modules()
EDGES = _edges(MODULES)


def _where(e: Edge) -> str:
    return f"{MODULES[e.source].relative_to(ROOT.parent)}:{e.line} imports {e.target}"


def test_the_graph_is_read() -> None:
    """The parser sees the imports it must: a top-level one, a deferred one, a relative one."""
    seen = {(e.source, e.target, e.deferred) for e in EDGES}
    assert ("assistantd.app", "assistantd.core.settings", False) in seen
    assert ("assistantd.llm.router", "assistantd.llm.llama_cpp", True) in seen
    assert ("assistantd.llm.router", "assistantd.llm.base", False) in seen
    assert len(MODULES) > 100 and len(EDGES) > 300


def test_no_import_cycles() -> None:
    cycles = _cycles(MODULES, EDGES)
    details = [
        f"{' <-> '.join(c)}:\n"
        + "\n".join(f"    {_where(e)}" for e in EDGES if e.source in c and e.target in c)
        for c in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(details)


def test_core_imports_only_core() -> None:
    """`core/` is the ground floor: it may not import a domain (or any other) package."""
    up = [
        _where(e)
        for e in EDGES
        if e.source.startswith("assistantd.core.") and not e.target.startswith("assistantd.core.")
    ]
    assert not up, "core/ imports upward:\n" + "\n".join(up)


def test_no_deferred_imports_outside_the_list() -> None:
    deferred = [e for e in EDGES if e.deferred]
    unlisted = [_where(e) for e in deferred if not _listed(e)]
    assert not unlisted, (
        "assistantd imports inside a function or under TYPE_CHECKING (move them to the top of "
        "the module, or name an optional extra in DEFERRED):\n" + "\n".join(unlisted)
    )
    used = {(e.source, e.target) for e in deferred} | {(e.source, "*") for e in deferred}
    stale = set(DEFERRED) - used
    assert not stale, f"DEFERRED names imports that are gone: {sorted(stale)}"


def test_the_runtime_does_not_import_the_test_helpers() -> None:
    """`assistantd.testing` (fakes and test helpers) may import anything; nothing imports it."""
    into = [
        _where(e)
        for e in EDGES
        if e.target.startswith("assistantd.testing")
        and not e.source.startswith("assistantd.testing")
    ]
    assert not into, "the runtime imports assistantd.testing:\n" + "\n".join(into)


#: The only modules outside `worker/` that may import it: the composition root builds the
#: worker, the engine and the dispatcher; everything else reaches execution through the
#: `RunDispatcher` Protocol (`runs/dispatch.py`).
EXECUTION_BUILDERS = frozenset({"assistantd.app"})


def test_execution_is_reached_only_through_the_dispatcher() -> None:
    """`runs/` is the API side: no module but the composition root imports `worker/`."""
    assert any(
        e.source in EXECUTION_BUILDERS and e.target.startswith("assistantd.worker") for e in EDGES
    )
    into = [
        _where(e)
        for e in EDGES
        if e.target.startswith("assistantd.worker")
        and not e.source.startswith(("assistantd.worker", "assistantd.testing"))
        and e.source not in EXECUTION_BUILDERS
    ]
    assert not into, "imports of run execution (worker/) from outside it:\n" + "\n".join(into)
