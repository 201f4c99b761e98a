"""Every command that scores held-out data refuses labels the model does not know in its own words.

``minicnn evaluate`` and ``minicnn mc-report`` on data whose labels are not among the model's classes (a model
of 2 classes scored on 10): the one-line error names the command, the data scored (the built-in default, a
``--data`` split, a ``--test-data`` file), the unknown labels and the model's classes; never scikit-learn's or
the library's words (``y holds``, ``classes_``). Swept over both commands x every data source.
"""

import warnings

import numpy as np
import pytest

from helpers import run_cli
from test_cli_option_words import files  # noqa: F401 -- the fixture

SOURCES = {"default digits": [], "--data split": ["--data", "d10.npz", "--test-size", "0.5"],
           "--test-data": ["--test-data", "d10.npz"]}


@pytest.fixture(scope="module")
def folder(files):
    """``files``' model of 2 classes (m.npz) beside its images labelled with 10 classes (d10.npz)."""
    X = np.load(files / "x.npy")
    np.savez(files / "d10.npz", X=X, y=np.arange(len(X)) % 10)
    return files


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("command", ["evaluate", "mc-report"])
def test_labels_outside_the_models_classes_are_named_with_the_data(folder, monkeypatch, command, source):
    monkeypatch.chdir(folder)
    more = ["--mc-samples", "2"] if command == "mc-report" else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = run_cli(command, "--model", "m.npz", *SOURCES[source], *more)
    assert code == 1 and err.startswith(f"minicnn {command}: error: {command} scored "), err
    assert "are not among the model's classes [0, 1]" in err and "[2, 3, 4" in err, err
    assert ("d10.npz" if "d10.npz" in SOURCES[source] else "digits") in err, err
    assert "classes_" not in err and "y holds" not in err and "Traceback" not in err, err
