"""The package's structure, read from the source with ``ast`` (nothing is imported):

* no import circle among the modules of ``tfrec``, ``pipelines``, ``export`` and ``serving`` (a package's
  ``__init__`` counts as a module; imports inside functions count too);
* no module over :data:`MAX_LINES` lines (generated files aside);
* the experiment core imports no family: nothing from ``tfrec.experiments.{kdd,hccp,pwiser}`` nor
  ``tfrec.families``;
* one place decides the family of a dataset: only :func:`tfrec.families.registry.kind_of` reads ``schema.json``'s
  ``kind`` (and the ``format`` of schemas older than that key); nothing outside ``tfrec/families`` reads the raw
  schema object through ``read_schema_json`` or ``kind_of``.
"""

from __future__ import annotations

import ast
import os
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("tfrec", "pipelines", "export", "serving")
MAX_LINES = 400
CORE = "tfrec.experiments.core"
FAMILY_CODE = ("tfrec.experiments.kdd", "tfrec.experiments.hccp", "tfrec.experiments.pwiser", "tfrec.families")
#: The one reader of schema.json's ``kind``.
KIND_READER = os.path.join("tfrec", "families", "registry.py")
#: The names through which the raw schema.json object (and its kind) is read; only tfrec/families uses them.
SCHEMA_READERS = ("kind_of", "read_schema_json")


def modules(root: str = ROOT, packages: Sequence[str] = PACKAGES) -> Dict[str, str]:
    """Dotted module name -> path, for every ``.py`` file under ``packages`` (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for package in packages:
        for d, _, files in os.walk(os.path.join(root, package)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(d, f)
                    name = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                    out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def _parse(path: str) -> ast.AST:
    with open(path, "r", encoding="utf-8") as f:
        return ast.parse(f.read(), filename=path)


def import_graph(mods: Dict[str, str]) -> Dict[str, Set[str]]:
    """module -> the modules of ``mods`` it imports (``from pkg import name`` imports ``pkg`` and, when ``name`` is a
    submodule, ``pkg.name``; an import of an unknown name resolves to its nearest known parent package)."""

    def resolve(name: str) -> Optional[str]:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: Dict[str, Set[str]] = defaultdict(set)
    for module, path in mods.items():
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package
                    for _ in range(node.level - 1):
                        parent = parent.rpartition(".")[0]
                    base = f"{parent}.{node.module}" if node.module else parent
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                found = resolve(target)
                if found and found != module:
                    graph[module].add(found)
    return graph


def strongly_connected(graph: Dict[str, Set[str]], nodes: Iterable[str]) -> List[List[str]]:
    """Tarjan's strongly connected components of more than one node, each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
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

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def cycle_in(graph: Dict[str, Set[str]], component: Sequence[str]) -> List[str]:
    """A shortest import cycle through the component's first module: ``[a, b, ..., a]`` (BFS inside it)."""
    members, start = set(component), component[0]
    previous: Dict[str, Optional[str]] = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])  # type: ignore[arg-type]
                return path[::-1] + [start]
            if w in members and w not in previous:
                previous[w] = v
                queue.append(w)
    return list(component)


def test_no_import_cycle():
    mods = modules()
    graph = import_graph(mods)
    components = strongly_connected(graph, mods)
    message = "\n".join(f"{len(c)} modules import each other: {' -> '.join(cycle_in(graph, c))} (all: {c})"
                        for c in components)
    assert not components, "import cycles:\n" + message


def _generated(path: str) -> bool:
    """A generated file (protobuf output or a file that says so in its first lines) is not held to the limit."""
    if path.endswith("_pb2.py") or path.endswith("_pb2_grpc.py"):
        return True
    with open(path, "r", encoding="utf-8") as f:
        head = "".join(f.readline() for _ in range(3))
    return "DO NOT EDIT" in head or "@generated" in head


def test_no_module_over_the_line_limit():
    long = []
    for module, path in sorted(modules().items()):
        with open(path, "r", encoding="utf-8") as f:
            lines = sum(1 for _ in f)
        if lines > MAX_LINES and not _generated(path):
            long.append(f"{os.path.relpath(path, ROOT)}: {lines} lines")
    assert not long, f"modules over {MAX_LINES} lines (one job per module: split along a seam):\n" + "\n".join(long)


def test_experiment_core_imports_no_family():
    mods = modules()
    graph = import_graph(mods)
    found = [f"{m} imports {t}" for m in sorted(mods) if m == CORE or m.startswith(CORE + ".")
             for t in sorted(graph.get(m, ())) if any(t == f or t.startswith(f + ".") for f in FAMILY_CODE)]
    assert not found, "the experiment core must not import family code:\n" + "\n".join(found)


def _reads_of_kind(tree: ast.AST) -> List[ast.AST]:
    """The nodes of ``tree`` that read a schema object's ``kind`` or ``format``: ``<schema...>["kind"]``,
    ``<schema...>.get("kind")`` (an expression whose source names a schema), and ``"ExampleListWithContext" in
    <...format...>`` (the layout of schemas older than the ``kind`` key)."""
    found = []
    for node in ast.walk(tree):
        key, holder = None, None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key, holder = node.slice.value, node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant)):
            key, holder = node.args[0].value, node.func.value
        if key in ("kind", "format") and holder is not None and "schema" in ast.unparse(holder).lower():
            found.append(node)
        if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant)
                and isinstance(node.left.value, str) and "ExampleListWithContext" in node.left.value
                and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)
                and "format" in ast.unparse(node.comparators[0])):
            found.append(node)
    return found


def _schema_reader_uses(tree: ast.AST):
    """``(node, name)`` of every use of :data:`SCHEMA_READERS` (a name, an attribute or an imported name)."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id in SCHEMA_READERS:
            yield n, n.id
        elif isinstance(n, ast.Attribute) and n.attr in SCHEMA_READERS:
            yield n, n.attr
        elif isinstance(n, ast.ImportFrom):
            yield from ((n, a.name) for a in n.names if a.name in SCHEMA_READERS)


def test_one_place_decides_the_family():
    outside, inside = [], []
    for module, path in sorted(modules().items()):
        rel = os.path.relpath(path, ROOT)
        tree = _parse(path)
        reads = [f"{rel}:{n.lineno}: {ast.unparse(n)}" for n in _reads_of_kind(tree)]
        if rel == KIND_READER:
            inside += reads
            continue
        outside += reads
        if not rel.startswith(os.path.join("tfrec", "families") + os.sep):
            outside += [f"{rel}:{n.lineno}: uses {name}" for n, name in _schema_reader_uses(tree)]
    assert not outside, ("schema.json's kind is read outside tfrec.families.registry.kind_of (ask "
                         "tfrec.families.family_of instead):\n" + "\n".join(outside))
    assert inside, f"{KIND_READER} no longer reads schema.json's kind: update this test's KIND_READER"
