"""The package's import graph: every module imports, no module imports itself back (lazy imports included), the
engine never loads scikit-learn, and no alias of an old name is left."""

import ast
import importlib
import json
import pathlib
import subprocess
import sys

import pytest

import minicnn
from helpers import skip_without_extras

ROOT = pathlib.Path(minicnn.__file__).parent


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


def import_graph():
    """module -> set of modules it imports anywhere in its source."""
    edges = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges[module] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                # a module's own packages are initialized before it: importing them is no back edge
                ancestors = {module} | {t for t in MODULES if module.startswith(t + ".")}
                edges[module] |= _targets(module, node, path.name == "__init__.py") - ancestors
    return edges


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
    edges = import_graph()
    assert sum(len(v) for v in edges.values()) > 50   # the parser sees the package's imports
    assert ("minicnn.estimator", "minicnn.io") in {(a, b) for a in edges for b in edges[a]}
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
    edges = import_graph()
    reach, todo = set(), [layer]
    while todo:
        for nxt in edges[todo.pop()] - reach:
            reach.add(nxt)
            todo.append(nxt)
    assert not reach & set(above)


@pytest.mark.parametrize("module", sorted(set(MODULES) - {"minicnn.__main__"}))
def test_every_module_imports(module):
    skip_without_extras(module)
    importlib.import_module(module)


# ---------------------------------------------------------------- the layers: no scikit-learn below the estimator
#: Each module (a package stands for all its modules) -> its layer in DESIGN.md, bottom to top. The engine (kernels,
#: layers, network, training, persistence and the tables they read) must import without scikit-learn; so must the
#: Predictor, the face that predicts without it. A module not listed here counts as engine.
LAYERS = {
    "minicnn": "engine",   # the lazy loader only
    "minicnn.backend": "engine",
    "minicnn.layers": "engine",
    "minicnn.network": "engine",
    "minicnn.losses": "engine",
    "minicnn.optim": "engine",
    "minicnn.schedules": "engine",
    "minicnn.augment": "engine",
    "minicnn.training": "engine",
    "minicnn.threads": "engine",
    "minicnn._predict": "engine",
    "minicnn._caller": "engine",
    "minicnn._progress": "engine",
    "minicnn.architecture": "engine",
    "minicnn.placement": "engine",
    "minicnn.params": "engine",
    "minicnn.inputs": "engine",
    "minicnn.io": "engine",
    "minicnn.predictor": "face without scikit-learn",
    "minicnn.estimator": "estimator",
    "minicnn._estimator_base": "estimator",
    "minicnn.convergence": "estimator",
    "minicnn.weights": "estimator",
    "minicnn._record": "estimator",   # the record an estimator hands io.save
    "minicnn._callbacks": "estimator",   # scikit-learn's callback API
    "minicnn.checkpoint": "estimator",
    "minicnn.uncertainty": "face",   # the MC report (scikit-learn metrics)
    "minicnn.onnx": "face",
    "minicnn.dask_wrappers": "face",
    "minicnn.datasets": "face",
    "minicnn.cli": "face",
    "minicnn.__main__": "face",
    "minicnn.tools": "face",
}
SKLEARN_FREE = ("engine", "face without scikit-learn")


def layer_of(module):
    owner = max((name for name in LAYERS if module == name or module.startswith(name + ".")), key=len, default=None)
    return LAYERS.get(owner, "engine")


def test_every_layer_table_row_names_a_module():
    assert set(LAYERS) <= set(MODULES)
    assert {layer_of(m) for m in MODULES} == {"engine", "estimator", "face", "face without scikit-learn"}


def test_nothing_below_the_estimator_imports_scikit_learn():
    """A fresh process imports every engine module (and the Predictor) one by one: none loads scikit-learn."""
    names = sorted(m for m in MODULES if layer_of(m) in SKLEARN_FREE)
    code = ("import importlib, json, sys\n"
            "loaded, missing, first = [], [], None\n"
            f"for name in {names!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError as exc:\n"
            "        missing.append([name, exc.name])\n"
            "        continue\n"
            "    loaded.append(name)\n"
            "    if first is None and 'sklearn' in sys.modules:\n"
            "        first = name\n"
            "print(json.dumps({'loaded': loaded, 'missing': missing, 'first': first}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=ROOT.parent)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["first"] is None, f"importing {result['first']} loaded scikit-learn"
    # only the optional compiled or Numba kernels may be absent
    assert all(name == "numba" or (name or "").startswith("minicnn.backend._") for _, name in result["missing"]), \
        result["missing"]
    assert {"minicnn.training", "minicnn.network", "minicnn.io", "minicnn.predictor"} <= set(result["loaded"])


# ---------------------------------------------------------------- no alias of an old name
#: Modules and attributes that were deprecated aliases in 0.1.0 (never released); they stay gone.
REMOVED = ("minicnn.config", "minicnn.bench", "minicnn.study", "minicnn._architecture", "minicnn._inputs",
           "minicnn.io:load", "minicnn.io:_load_file", "minicnn.placement:LayerToken",
           "minicnn.placement:TOKEN_HELP", "minicnn.placement:parse_layers")
#: The one module-level ``__getattr__``: the package's lazy loader of its public names.
LAZY_LOADER = "minicnn"
#: Modules that may re-export names of another minicnn module (besides package ``__init__`` files and the
#: backends' kernel namespaces), with the reason.
REEXPORTS = {"minicnn.threads": "the thread runtime's environment is public here (README: "
                                "minicnn.threads.ThreadEnvironmentError)"}


@pytest.mark.parametrize("name", REMOVED)
def test_removed_aliases_stay_removed(name):
    module, _, attribute = name.partition(":")
    if not attribute:
        assert module not in MODULES   # no file in the package (an editable install elsewhere may still find one)
    else:
        assert not hasattr(importlib.import_module(module), attribute)


def _problems(module, path):
    """Ways ``module`` forwards old names: what the next test refuses."""
    from minicnn.backend import _MODULES as backend_modules

    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    problems = []
    if "DeprecationWarning" in source:
        problems.append("issues a DeprecationWarning (0.1.0 was never released: nothing is deprecated)")
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__" and module != LAZY_LOADER:
            problems.append("has a module-level __getattr__")
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Subscript) and ast.unparse(t.value) == "sys.modules"
                                                for t in node.targets):
            problems.append("replaces a module in sys.modules")
    if path.name == "__init__.py":
        return problems
    own = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))
           and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if not own:
        problems.append("only imports: a module without a purpose of its own")
    if module in REEXPORTS or module in backend_modules.values():
        return problems
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    exported = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            exported = {e.value for e in node.value.elts}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("minicnn")):
            unused = [a.asname or a.name for a in node.names if (a.asname or a.name) not in used | exported]
            if unused:
                problems.append(f"re-exports {unused} without using them")
    return problems


def test_no_module_forwards_old_names():
    problems = {module: _problems(module, path) for module, path in MODULES.items()}
    assert {m: p for m, p in problems.items() if p} == {}


def test_the_rules_catch_each_kind_of_alias(tmp_path):
    kinds = {
        "warns.py": "import warnings\nwarnings.warn('moved', DeprecationWarning)\nX = 1\n",
        "getattr.py": "def __getattr__(name):\n    return name\n",
        "swap.py": "import sys\nfrom . import jit\nsys.modules[__name__] = jit\n",
        "star.py": '"""Old name."""\nfrom .inputs import *\n',
        "forward.py": "from .inputs import prepare_X\n\nY = 2\n",
    }
    for name, text in kinds.items():
        (tmp_path / name).write_text(text)
        assert _problems(f"minicnn.{name[:-3]}", tmp_path / name), name
    (tmp_path / "fine.py").write_text("from .inputs import prepare_X\n\n\ndef f(x):\n    return prepare_X(x)\n")
    assert _problems("minicnn.fine", tmp_path / "fine.py") == []


def test_the_lazy_loader_serves_the_public_names_only():
    assert set(minicnn._LAZY) == set(minicnn.__all__) - {"__version__"}
    for name in minicnn.__all__:
        assert getattr(minicnn, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'config'"):
        minicnn.config   # noqa: B018


# ---------------------------------------------------------------- the cold-start path imports only what predicts
#: Modules that the import of the Predictor face must not pull in at module level (they are imported inside the
#: functions that need them): each costs part of a cold start that loads a model and predicts arrays
#: (tests/test_cold_start.py checks a fresh process end to end, third-party modules included).
COLD_PATH = ("minicnn.predictor", "minicnn.io", "minicnn._predict", "minicnn.backend.cython_kernels")
NOT_ON_COLD_PATH = ("minicnn.images", "minicnn.files", "minicnn.backend.reference", "minicnn.backend.numba_kernels",
                    "minicnn.estimator", "minicnn._estimator_base", "minicnn.training", "minicnn.embedding",
                    "minicnn.onnx", "minicnn.checkpoint", "minicnn.datasets", "minicnn.tools")


def module_level_graph():
    """module -> minicnn modules it imports when it is imported (statements at module level, not in functions)."""
    edges = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        nodes = [n for top in tree.body if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 for n in ast.walk(top) if isinstance(n, (ast.Import, ast.ImportFrom))]
        ancestors = {module} | {t for t in MODULES if module.startswith(t + ".")}
        edges[module] = set().union(*(_targets(module, n, path.name == "__init__.py") for n in nodes)) - ancestors
    return edges


@pytest.mark.parametrize("start", COLD_PATH)
def test_the_cold_start_path_does_not_import_what_prediction_does_not_use(start):
    edges, reach, todo = module_level_graph(), set(), [start]
    while todo:
        for nxt in edges[todo.pop()] - reach:
            reach.add(nxt)
            todo.append(nxt)
    below = {m for m in reach for bad in NOT_ON_COLD_PATH if m == bad or m.startswith(bad + ".")}
    assert below == set()


def test_the_module_level_graph_sees_module_level_imports_only():
    edges = module_level_graph()
    assert "minicnn.architecture" in edges["minicnn.predictor"]   # at the top of the module
    assert "minicnn.io" not in edges["minicnn.predictor"]   # inside load_predictor
