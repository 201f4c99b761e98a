"""The data record of ``minicnn fit`` keeps each data file's absolute path and a content fingerprint.

Swept over every kind of data file (.npz, idx images + labels, folder:) given as ``--data`` or ``--test-data``,
read back by ``minicnn evaluate`` and ``minicnn mc-report``: the same files give no warning; the same relative
spelling from another working directory (another file) and a changed file each give a warning naming the
option and the path; a model file written before the fingerprints still loads and scores.
"""

import os
import shutil
import warnings

import numpy as np
import pytest

from helpers import run_cli

KINDS = ("npz", "idx", "folder")


def _write(kind, folder, X, y):
    """Data of ``kind`` in ``folder`` (relative paths inside it); returns the spec as typed there."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "npz":
        np.savez(folder / "d.npz", X=X, y=y)
        return "d.npz"
    if kind == "idx":
        from minicnn.datasets import save_idx

        save_idx(np.rint(X[..., 0] * 255).astype(np.uint8), y.astype(np.uint8), folder / "x.idx", folder / "y.idx")
        return "idx:x.idx,y.idx"
    pytest.importorskip("PIL")
    from PIL import Image

    for label in np.unique(y):
        (folder / "img" / str(label)).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(X, y)):
        Image.fromarray(np.rint(image[..., 0] * 255).astype(np.uint8)).save(folder / "img" / str(label) / f"{i}.png")
    return "folder:img"


def _data(seed):
    from minicnn.datasets import load_digits_images

    X, y = load_digits_images()
    keep = np.flatnonzero(y < 2)[:60]
    rng = np.random.default_rng(seed)
    X = X[keep] if seed == 0 else np.clip(X[keep] + rng.random(X[keep].shape, dtype=np.float32) * 0.3, 0, 1)
    return X, y[keep]


def _run(*argv):
    with warnings.catch_warnings():
        warnings.simplefilter("always")   # each reaches stderr as the command's one-line warning
        return run_cli(*argv)


def _score(command, option, spec):
    extra = ["--data", spec] if option == "--data" else ["--data", spec, "--test-data", spec]
    more = ["--mc-samples", "2"] if command == "mc-report" else []
    code, out, err = _run(command, "--model", "m.npz", *extra, *more)
    assert code == 0, err
    return [line for line in err.splitlines() if "warning" in line]


@pytest.mark.parametrize("option", ["--data", "--test-data"])
@pytest.mark.parametrize("kind", KINDS)
def test_scoring_other_or_changed_files_is_said(kind, option, tmp_path, monkeypatch):
    home = tmp_path / "home"
    X, y = _data(0)
    spec = _write(kind, home, X, y)
    monkeypatch.chdir(home)
    extra = ["--data", spec] if option == "--data" else ["--data", spec, "--test-data", spec]
    code, _, err = _run("fit", "--quiet", "--epochs", "1", "--layers", "conv2,maxpool", *extra, "--out", "m.npz")
    assert code == 0, err

    from minicnn import load_predictor

    record = load_predictor("m.npz")._data_record
    entries = [e for e in record["files"] if e["option"] == option]
    assert entries and all(os.path.isabs(e["path"]) and e["typed"] in spec for e in entries), record
    for command in ("evaluate", "mc-report"):   # the same files: nothing to say
        assert not [w for w in _score(command, option, spec) if "minicnn fit" in w], command

    other = tmp_path / "other"   # the same spelling from another working directory names other files
    _write(kind, other, *_data(1))
    shutil.copy(home / "m.npz", other / "m.npz")
    monkeypatch.chdir(other)
    for command in ("evaluate", "mc-report"):
        said = [w for w in _score(command, option, spec) if "is not the data 'minicnn fit' read" in w
                and f"warning: UserWarning: {option} " in w]
        assert len(said) == 1 and str(home) in said[0], said

    monkeypatch.chdir(home)   # the files the fit read, changed since
    _write(kind, home, *_data(1))
    for command in ("evaluate", "mc-report"):
        said = [w for w in _score(command, option, spec) if "changed since 'minicnn fit' read it" in w
                and f"warning: UserWarning: {option} " in w]
        assert said, said


def test_a_model_file_without_fingerprints_still_loads_and_scores(tmp_path, monkeypatch):
    from minicnn import CNNClassifier, load, load_predictor

    X, y = _data(0)
    spec = _write("npz", tmp_path, X, y)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, random_state=0).fit(X, y)
    clf._data_record = {"data": spec, "test_data": None, "test_size": 0.2, "seed": 0}   # as written before
    clf.save("m.npz")
    assert load("m.npz")._data_record == load_predictor("m.npz")._data_record == clf._data_record
    assert not [w for w in _score("evaluate", "--data", spec) if "minicnn fit" in w]


@pytest.mark.parametrize("entry", [
    {"option": "--data"}, {"option": "--data", "typed": "d", "path": "/d", "size": -1, "mtime_ns": 0, "count": 1,
                           "sha256": None},
    {"option": 1, "typed": "d", "path": "/d", "size": 1, "mtime_ns": 0, "count": 1, "sha256": None}, "text",
])
def test_a_malformed_file_entry_is_refused(entry):
    from minicnn._data_record import data_record_problem

    record = {"data": "d.npz", "test_data": None, "test_size": 0.2, "seed": 0}
    assert data_record_problem(record) is None and data_record_problem(dict(record, files=[])) is None
    assert data_record_problem(dict(record, files=[entry])) is not None


def test_evaluate_without_data_names_the_recorded_absolute_path(tmp_path, monkeypatch):
    """From another working directory, the refusal to re-read file data unasked says where the fit read it."""
    X, y = _data(0)
    spec = _write("npz", tmp_path / "home", X, y)
    monkeypatch.chdir(tmp_path / "home")
    code, _, err = _run("fit", "--quiet", "--epochs", "1", "--layers", "conv2,maxpool", "--data", spec, "--out",
                        "m.npz")
    assert code == 0, err
    monkeypatch.chdir(tmp_path)
    code, _, err = _run("evaluate", "--model", "home/m.npz")
    assert code == 1 and f"--data {spec}: {tmp_path / 'home' / spec}" in err, err
