"""Data moved with its model (the same files at another absolute path) is the data ``minicnn fit`` read.

The data record keeps each file's absolute path and fingerprint. Typed the same from another working directory,
the spelling names files at another path: when those files hold what the fit read (the fingerprints agree: the
data folder moved or copied with its dates), ``evaluate`` / ``mc-report`` have nothing to say; when they hold
other data, the warning names the recorded path. Swept over every kind of data file (.npz, idx images + labels,
folder:) and both options.
"""

import os
import shutil

import numpy as np
import pytest

from minicnn import _data_record
from test_data_record_files import KINDS, _data, _write


def _model(record):
    class Model:
        _data_record = record
    return Model()


def _spec_for(option, spec):
    return (spec, None) if option == "--data" else ("digits", spec)


@pytest.mark.parametrize("option", ["--data", "--test-data"])
@pytest.mark.parametrize("kind", KINDS)
def test_moved_data_is_the_same_data_and_other_data_is_said(kind, option, tmp_path, monkeypatch):
    pytest.importorskip("PIL", reason="folder: data needs Pillow")
    home = tmp_path / "home"
    spec = _write(kind, home, *_data(0))
    monkeypatch.chdir(home)
    model = _model(_data_record.make_record(*_spec_for(option, spec), 0.2, 0))
    assert _data_record.data_changes(model, option, spec) == []

    moved = tmp_path / "moved"
    shutil.copytree(home, moved, copy_function=shutil.copy2)   # the data's copy keeps its dates
    shutil.rmtree(home)
    monkeypatch.chdir(moved)
    assert _data_record.data_changes(model, option, spec) == [], "the same data, moved"

    other = tmp_path / "other"
    _write(kind, other, *_data(1))
    monkeypatch.chdir(other)
    said = _data_record.data_changes(model, option, spec)
    assert len(said) == 1 and "is not the data 'minicnn fit' read" in said[0] and str(home) in said[0], said
