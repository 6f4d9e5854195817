"""The package's shape (README, How the code is laid out): small modules, small classes, an
import graph without cycles, and a command line the library never imports. Read from the
source with `ast`, so that an import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

import charrnn

PACKAGE = Path(charrnn.__file__).parent
MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 200
# a class being shrunk on the engine branch; remove it from here once it fits
OVERSIZED_CLASSES = {"charrnn.engines.torch.TorchEngine"}


def _modules():
    """{module name: parsed source} of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = (path, ast.parse(path.read_text(encoding="utf-8")))
    return modules


def import_graph(modules):
    """{module: the package's modules it imports}, anywhere in its source."""
    graph = {}
    for name, (_, tree) in modules.items():
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:  # `from charrnn.engines import layout` imports a module
                    full = f"{node.module}.{a.name}"
                    targets.add(full if full in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_is_over_600_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines())
             for name, (path, _) in _modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES} == {}


def test_no_class_is_over_200_lines():
    long = {f"{name}.{node.name}": node.end_lineno - node.lineno + 1
            for name, (_, tree) in _modules().items() for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)}
    assert {c: n for c, n in long.items()
            if n > MAX_CLASS_LINES and c not in OVERSIZED_CLASSES} == {}


def test_the_import_graph_has_no_cycle():
    graph = import_graph(_modules())
    assert "charrnn.train" in graph and "charrnn.cli.train" in graph  # the graph is read
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_the_command_line_imports_the_command_line():
    graph = import_graph(_modules())
    outside = {m: sorted(t for t in targets if t.startswith("charrnn.cli"))
               for m, targets in graph.items()
               if not m.startswith("charrnn.cli") and m != "charrnn.__main__"}
    assert {m: t for m, t in outside.items() if t} == {}
