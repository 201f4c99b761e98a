"""Every docstring example in the package runs, and every public callable has a docstring."""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import minicnn
from helpers import skip_without_extras

SKIP = {"minicnn.__main__"}   # runs the CLI on import


def all_modules():
    names = [minicnn.__name__]
    for info in pkgutil.walk_packages(minicnn.__path__, prefix="minicnn."):
        if info.name not in SKIP and not info.name.split(".")[-1].startswith("_"):
            names.append(info.name)
    return sorted(names)


MODULES = all_modules()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    skip_without_extras(name)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_public_callables_have_docstrings(name):
    skip_without_extras(name)
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no module docstring"
    missing = []
    for attr, obj in vars(module).items():
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
            missing.append(attr)
    assert not missing, f"{name}: public callables without docstrings: {missing}"
