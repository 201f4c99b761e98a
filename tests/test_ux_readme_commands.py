"""The documented `minicnn fit` commands on the full MNIST / Fashion-MNIST finish without a warning.

A full MNIST run (60,000 images, 12 epochs) takes too long for the suite, so each documented command on a named
large data set runs here with exactly its options on a subset of the same data (the first TRAIN training and
TEST test images, given as .npz files), in a fresh process under ``PYTHONWARNINGS=error``: any warning the
command lets through becomes an error, and stderr must stay empty.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LARGE = ("mnist", "fashion-mnist")
TRAIN, TEST = 200, 100


def _documented_fits():
    """``(doc name, argv after 'minicnn')`` of every documented `minicnn fit` command on a large named set."""
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for language, block in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S):
            if language not in ("bash", "sh", "console", ""):
                continue
            for line in block.splitlines():
                line = line.strip().removeprefix("$ ")
                if not line.startswith("minicnn fit"):
                    continue
                argv = shlex.split(line.split(" #")[0])[1:]
                if "--data" in argv and argv[argv.index("--data") + 1] in LARGE:
                    yield doc.name, argv


COMMANDS = list(_documented_fits())


def test_the_readme_documents_a_large_data_command():
    assert any(doc == "README.md" and argv[argv.index("--data") + 1] == "mnist" for doc, argv in COMMANDS)


def _subset(name, tmp_path):
    from minicnn import datasets

    load = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist}[name]
    try:
        X, y, X_test, y_test = load()
    except (FileNotFoundError, ImportError) as exc:
        pytest.skip(f"{name} is not installed here: {exc}")
    train, test = tmp_path / f"{name}-train.npz", tmp_path / f"{name}-test.npz"
    np.savez(train, X=X[:TRAIN], y=y[:TRAIN])
    np.savez(test, X=X_test[:TEST], y=y_test[:TEST])
    return str(train), str(test)


@pytest.mark.parametrize("doc, argv", COMMANDS, ids=[" ".join(a[:3]) + f" ({d})" for d, a in COMMANDS])
def test_documented_large_data_fit_finishes_without_a_warning(doc, argv, tmp_path):
    argv = list(argv)
    i = argv.index("--data")
    train, test = _subset(argv[i + 1], tmp_path)
    argv[i + 1:i + 2] = [train, "--test-data", test]
    if "--out" in argv:
        argv[argv.index("--out") + 1] = str(tmp_path / "model.npz")
    else:
        argv += ["--out", str(tmp_path / "model.npz")]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONWARNINGS="error")
    done = subprocess.run([sys.executable, "-m", "minicnn", *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == "", done.stderr[-3000:]
    assert "test accuracy:" in done.stdout and f"saved model to {tmp_path / 'model.npz'} (" in done.stdout
