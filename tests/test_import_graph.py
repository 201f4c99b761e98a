"""The package's import graph: every module imports, and no module imports itself back (lazy imports included)."""

import ast
import importlib
import pathlib
import warnings

import pytest

import minicnn
from helpers import skip_without_extras

ROOT = pathlib.Path(minicnn.__file__).parent
#: Deprecated aliases kept for one release; each is a module ``__getattr__`` that warns before importing upward.
DEPRECATED_ALIAS_EDGES = set()   # io.load, the last alias import, is gone


def module_name(path):
    parts = ("minicnn",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _targets(module, node, is_package):
    """Fully qualified minicnn modules a (possibly relative, possibly lazy) import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")
            base = base[:len(base) - node.level + (1 if is_package else 0)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
    found = set()
    for name in names:
        if name in MODULES:
            found.add(name)
            parts = name.split(".")
            # parent packages run first (minicnn/__init__.py itself imports nothing at import time)
            found.update(".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in MODULES)
    return found


def _deprecated_alias_nodes(tree):
    """Import statements inside a module-level ``__getattr__`` that issues a DeprecationWarning."""
    nodes = set()
    for func in tree.body:
        if (isinstance(func, ast.FunctionDef) and func.name == "__getattr__"
                and "DeprecationWarning" in ast.unparse(func)):
            nodes.update(id(n) for n in ast.walk(func) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return nodes


def import_graph():
    """``(edges, alias_edges)``: module -> set of modules it imports anywhere in its source."""
    edges, alias_edges = {}, set()
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        aliases = _deprecated_alias_nodes(tree)
        edges[module] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                # a module's own packages are initialized before it: importing them is no back edge
                ancestors = {module} | {t for t in MODULES if module.startswith(t + ".")}
                targets = _targets(module, node, path.name == "__init__.py") - ancestors
                if id(node) in aliases:
                    alias_edges.update((module, target) for target in targets)
                else:
                    edges[module] |= targets
    return edges, alias_edges


def find_cycle(edges):
    """One cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_cycle():
    edges, alias_edges = import_graph()
    assert sum(len(v) for v in edges.values()) > 50   # the parser sees the package's imports
    assert ("minicnn.estimator", "minicnn.io") in {(a, b) for a in edges for b in edges[a]}
    assert alias_edges == DEPRECATED_ALIAS_EDGES
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def test_the_cycle_finder_finds_a_lazy_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse("def f():\n    from . import estimator\n")
    assert "minicnn.estimator" in _targets("minicnn.io", tree.body[0].body[0], False)


@pytest.mark.parametrize("layer, above", [
    ("minicnn.io", ("minicnn.estimator", "minicnn._estimator_base", "minicnn.predictor", "minicnn._record")),
    ("minicnn.files", ("minicnn.io", "minicnn.estimator", "minicnn.predictor", "minicnn.datasets", "minicnn.network")),
    ("minicnn.architecture", ("minicnn.placement", "minicnn.estimator", "minicnn.io")),
    ("minicnn.network", ("minicnn.architecture", "minicnn.estimator", "minicnn.training")),
])
def test_lower_layers_never_import_upper_ones(layer, above):
    edges, _ = import_graph()
    reach, todo = set(), [layer]
    while todo:
        for nxt in edges[todo.pop()] - reach:
            reach.add(nxt)
            todo.append(nxt)
    assert not reach & set(above)


@pytest.mark.parametrize("module", sorted(set(MODULES) - {"minicnn.__main__"}))
def test_every_module_imports(module):
    skip_without_extras(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # the deprecated aliases are tested where they live
        importlib.import_module(module)
