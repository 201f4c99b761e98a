"""Every public submodule the docs name is reachable as ``minicnn.X`` after a plain ``import minicnn``."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import OPTIONAL_MODULES

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "minicnn"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _named_submodules():
    names = set()
    for doc in DOCS:
        for name in re.findall(r"\bminicnn\.([a-z][a-z0-9_]*)", doc.read_text()):
            if (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file():
                names.add(name)
    return sorted(names)


SUBMODULES = _named_submodules()


def test_the_docs_name_the_uncertainty_module():
    assert "uncertainty" in SUBMODULES and "datasets" in SUBMODULES


@pytest.mark.parametrize("name", SUBMODULES)
def test_a_documented_submodule_is_an_attribute_after_import_minicnn(name):
    for needs in OPTIONAL_MODULES.get(f"minicnn.{name}", ()):
        pytest.importorskip(needs)
    code = (f"import sys, minicnn\n"
            f"assert 'minicnn.{name}' not in sys.modules, 'imported eagerly'\n"
            f"module = minicnn.{name}\n"
            f"assert module.__name__ == 'minicnn.{name}', module\n"
            f"assert module is sys.modules['minicnn.{name}']\n")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_unknown_or_private_name_is_still_an_attribute_error():
    import minicnn

    for name in ("no_such_module", "_no_such_private"):
        with pytest.raises(AttributeError, match=f"has no attribute '{name}'"):
            getattr(minicnn, name)
