"""Checkpoints under hostile conditions: tree networks, the same data in other layouts, paths that alias other files,
files that are not checkpoints, and writes failing in the middle of a fit."""

import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from helpers import checkpoint_copies, run_cli
from minicnn import CNNClassifier, CNNRegressor, checkpoint

N_DIGITS = 96

#: Tree networks (a residual block with dropout between its convolutions, separable and depthwise convolutions,
#: global max pooling) with the states a resume must restore: early stopping, BatchNorm, SGD and Adam moments.
TREE_SETTINGS = [
    dict(layers=("conv4", "res4", "gmp"), dropout="after_each_layer", dropout_rate=0.3, batch_norm=True,
         early_stopping=True, validation_fraction=0.25, n_iter_no_change=50),
    dict(layers=("sep4", "dw3s2", "res4s2", "gap"), dropout=[2], dropout_rate=0.4, optimizer="sgd",
         lr_schedule="cosine"),
]


def _make(cls=CNNClassifier, **kw):
    params = dict(max_iter=3, backend="numpy", n_threads=1, random_state=5, batch_size=32)
    params.update(kw)
    return cls(**params)


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning of the short fits
        return est.fit(X, y)


def _same(a, b):
    wa, wb = a._snapshot()[1], b._snapshot()[1]
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def _target(cls, y):
    return y if cls is CNNClassifier else y.astype(np.float32) / 9


@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
@pytest.mark.parametrize("setting", range(len(TREE_SETTINGS)))
def test_tree_network_resumes_from_every_epoch_bit_identical(digits, tmp_path, setting, cls):
    """Each epoch's checkpoint of a network with blocks (dropout inside a block) resumes to the uninterrupted fit."""
    X, y = digits
    y = _target(cls, y)
    reference = _fit(_make(cls, **TREE_SETTINGS[setting]), X, y)
    path = tmp_path / "fit.npz"
    with checkpoint_copies(path, tmp_path) as copies:
        _fit(_make(cls, checkpoint_path=path, **TREE_SETTINGS[setting]), X, y)
    steps = [layer.step for layer in reference.network_.walk() if layer.stochastic]
    assert len(steps) >= 1 and all(s > 0 for s in steps)
    for copy in copies:
        resumed = _fit(_make(cls, checkpoint_path=copy, **TREE_SETTINGS[setting]), X, y)
        assert _same(resumed, reference), copy.name
        assert [layer.step for layer in resumed.network_.walk() if layer.stochastic] == steps, copy.name
        assert resumed.loss_curve_ == reference.loss_curve_
        np.testing.assert_array_equal(resumed.predict(X), reference.predict(X))


#: The same data in another memory layout or dtype (equal float32 values): resumed, never refused.
LAYOUTS = {
    "fortran order": lambda X: np.asfortranarray(X),
    "float64": lambda X: X.astype(np.float64),
    "strided view": lambda X: np.stack([X, X], axis=-1)[..., 0],
    "read-only": lambda X: np.frombuffer(X.tobytes(), dtype=X.dtype).reshape(X.shape),
    "list": lambda X: X.tolist(),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_same_data_in_another_layout_resumes(digits, tmp_path, layout, cls):
    X, y = digits
    y = _target(cls, y)
    path = tmp_path / "c.npz"
    reference = _fit(_make(cls, max_iter=2), X, y)
    _fit(_make(cls, max_iter=2, checkpoint_path=path), X, y)
    resumed = _fit(_make(cls, max_iter=2, checkpoint_path=path), LAYOUTS[layout](X), y)
    assert _same(resumed, reference) and resumed.n_iter_ == 2
    # the same data channels-first, with data_format saying so: the same fit
    path2 = tmp_path / "cf.npz"
    _fit(_make(cls, max_iter=2, checkpoint_path=path2, data_format="channels_first"), np.moveaxis(X, 3, 1), y)
    again = _fit(_make(cls, max_iter=2, checkpoint_path=path2, data_format="channels_first"),
                 LAYOUTS[layout](np.moveaxis(X, 3, 1)), y)
    assert again.n_iter_ == 2


#: Names of one file: --checkpoint must never be the model file, the data or the test data of the command.
ALIASES = {
    "same name": lambda p: p,
    "dot path": lambda p: os.path.join(os.path.dirname(p), ".", os.path.basename(p)),
    "symlink": "symlink",
    "hard link": "hardlink",
}


@pytest.mark.parametrize("alias", list(ALIASES))
@pytest.mark.parametrize("option", ["--out", "--data", "--test-data"])
def test_cli_checkpoint_aliasing_another_file_of_the_command_is_refused(digits, tmp_path, alias, option):
    X, y = digits
    data, test_data, out = tmp_path / "d.npz", tmp_path / "t.npz", tmp_path / "m.npz"
    np.savez(data, X=X, y=y)
    np.savez(test_data, X=X[:20], y=y[:20])
    if alias in ("symlink", "hard link") and option == "--out":
        out.write_bytes(b"previous model")
    target = {"--out": out, "--data": data, "--test-data": test_data}[option]
    before = target.read_bytes() if target.exists() else None
    if ALIASES[alias] == "symlink":
        ckpt = tmp_path / "link.npz"
        ckpt.symlink_to(target)
    elif ALIASES[alias] == "hardlink":
        ckpt = tmp_path / "hard.npz"
        os.link(target, ckpt)
    else:
        ckpt = ALIASES[alias](str(target))
    code, _, err = run_cli("fit", "--data", data, "--test-data", test_data, "--out", out, "--checkpoint", ckpt,
                           "--epochs", "1", "--layers", "conv4", "--dropout", "none", "--backend", "numpy", "--quiet")
    assert code != 0 and "--checkpoint " in err and "checkpoint_path" not in err and f"same file as {option}" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert (target.read_bytes() if target.exists() else None) == before


@pytest.mark.parametrize("kind", ["model file", "data file", "text file", "empty file", "truncated checkpoint"])
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_a_file_that_is_not_a_checkpoint_is_left_untouched(digits, tmp_path, kind, cls):
    X, y = digits
    y = _target(cls, y)
    path = tmp_path / "c.npz"
    if kind == "model file":
        _fit(_make(cls, max_iter=1), X, y).save(path)
    elif kind == "data file":
        np.savez(path, X=X, y=y)
    elif kind == "text file":
        path.write_text("my notes\n")
    elif kind == "empty file":
        path.write_bytes(b"")
    else:
        _fit(_make(cls, max_iter=1, checkpoint_path=path), X, y)
        path.write_bytes(path.read_bytes()[:300])
    before = path.read_bytes()
    est = _make(cls, max_iter=1, checkpoint_path=path)
    with pytest.raises(ValueError, match=r"checkpoint_path=.*cannot resume from it.*left as it is") as info:
        _fit(est, X, y)
    assert "set another checkpoint_path" in str(info.value)
    assert path.read_bytes() == before and not hasattr(est, "network_")


@pytest.mark.parametrize("value", ["a\0b.npz", "dir\0/c.npz"])
def test_a_nul_character_is_refused_naming_checkpoint_path(digits, tmp_path, value):
    X, y = digits
    est = _make(max_iter=1, checkpoint_path=str(tmp_path / value))
    with pytest.raises(ValueError, match=r"checkpoint_path=.*NUL"):
        _fit(est, X, y)
    assert not hasattr(est, "network_")


def _remove_directory(path):
    shutil.rmtree(os.path.dirname(path))


def _directory_becomes_a_file(path):
    directory = os.path.dirname(path)
    shutil.rmtree(directory)
    with open(directory, "w") as f:
        f.write("x")


@pytest.mark.parametrize("failure", [_remove_directory, _directory_becomes_a_file])
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_a_checkpoint_write_failing_mid_fit_names_checkpoint_path(digits, tmp_path, failure, cls):
    """The directory vanishes after epoch 1: the error names checkpoint_path and the epoch, nothing is left."""
    X, y = digits
    y = _target(cls, y)
    directory = tmp_path / "sub"
    directory.mkdir()
    path = directory / "c.npz"
    original = checkpoint.Checkpoint.write
    calls = []

    def write(self, est, rng, **state):
        calls.append(1)
        if len(calls) == 2:
            failure(self.path)
        return original(self, est, rng, **state)

    est = _make(cls, checkpoint_path=path)
    checkpoint.Checkpoint.write = write
    try:
        with pytest.raises(OSError, match=r"checkpoint_path=.*cannot write the checkpoint of epoch 2") as info:
            _fit(est, X, y)
    finally:
        checkpoint.Checkpoint.write = original
    assert info.value.filename is not None and not hasattr(est, "network_")
    assert set(os.listdir(tmp_path)) <= {"sub"}   # no temporary file beside it


def test_a_checkpoint_write_over_the_file_size_limit_names_checkpoint_path(tmp_path):
    """RLIMIT_FSIZE (a full disk's twin) in a child process: EFBIG naming checkpoint_path; no temporary file."""
    script = textwrap.dedent(f"""
        import os, resource, signal, sys, warnings
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from helpers import first_digits
        from minicnn import CNNClassifier
        warnings.simplefilter("ignore")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        X, y = first_digits(64)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))
        try:
            CNNClassifier(layers=("conv4", "res4", "gmp"), max_iter=2, backend="numpy", random_state=0,
                          checkpoint_path={str(tmp_path / "c.npz")!r}).fit(X, y)
        except OSError as exc:
            print(type(exc).__name__, exc)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert "checkpoint_path=" in done.stdout and "cannot write the checkpoint of epoch 1" in done.stdout, (
        done.stdout + done.stderr)
    assert os.listdir(tmp_path) == []


#: Edits of the checkpoint's JSON fields (the fingerprint kept, as a hand-edited or damaged file would keep it).
FIELD_EDITS = {
    "seed negative": lambda f: f.__setitem__("seed", [-1, 0, 0, 0]),
    "seed short": lambda f: f.__setitem__("seed", [1]),
    "seed str": lambda f: f.__setitem__("seed", "abc"),
    "seed huge": lambda f: f.__setitem__("seed", [2**70, 0, 0, 0]),
    "seed float": lambda f: f.__setitem__("seed", [1.5, 0, 0, 0]),
    "no lr_state": lambda f: f.pop("lr_state"),
    "lr epoch str": lambda f: f["lr_state"].__setitem__("epoch", "x"),
    "lr epoch off": lambda f: f["lr_state"].__setitem__("epoch", f["lr_state"]["epoch"] + 1),
    "lr adaptive negative": lambda f: f["lr_state"].__setitem__("adaptive", -1.0),
    "lr schedule other": lambda f: f["lr_state"].__setitem__("schedule", "cosine"),
    "no loop": lambda f: f.pop("loop"),
    "loop list": lambda f: f.__setitem__("loop", [1, 2]),
    "completed negative": lambda f: f["loop"].__setitem__("completed", -5),
    "completed too many": lambda f: f["loop"].__setitem__("completed", 99),
    "completed bool": lambda f: f["loop"].__setitem__("completed", True),
    "no_improvement str": lambda f: f["loop"].__setitem__("no_improvement", "x"),
    "start str": lambda f: f["loop"].__setitem__("start", "x"),
    "finished str": lambda f: f["loop"].__setitem__("finished", "no"),
    "iterations negative": lambda f: f["optimizer"].__setitem__("iterations", -1),
    "parts str": lambda f: f["optimizer"].__setitem__("parts", "x"),
    "parts 99": lambda f: f["optimizer"].__setitem__("parts", [99]),
    "no parts": lambda f: f["optimizer"].pop("parts"),
    "curve short": lambda f: f.__setitem__("validation_loss_curve", []),
    "curve str": lambda f: f.__setitem__("validation_loss_curve", ["a"]),
    "curve missing": lambda f: f.__setitem__("validation_loss_curve", None),
    "best flipped": lambda f: f["loop"].__setitem__("best", not f["loop"]["best"]),
}


@pytest.fixture(scope="module")
def epoch_one_checkpoint(digits, tmp_path_factory):
    """The members of the checkpoint of epoch 1 of a 3-epoch early-stopping fit with the adaptive schedule."""
    X, y = digits
    path = tmp_path_factory.mktemp("c") / "c.npz"
    with checkpoint_copies(path, path.parent) as copies:
        _fit(_make(checkpoint_path=path, **EDITED_FIT), X, y)
    return dict(np.load(copies[0]))


EDITED_FIT = dict(layers=("conv4", "res4", "gap"), early_stopping=True, validation_fraction=0.25,
                  lr_schedule="adaptive", n_iter_no_change=50)


@pytest.mark.parametrize("edit", list(FIELD_EDITS))
def test_every_invalid_checkpoint_field_is_refused_naming_checkpoint_path(digits, tmp_path, epoch_one_checkpoint,
                                                                           edit):
    import json

    X, y = digits
    members = dict(epoch_one_checkpoint)
    fields = json.loads(members["checkpoint"].tobytes())
    FIELD_EDITS[edit](fields)
    members["checkpoint"] = np.frombuffer(json.dumps(fields).encode(), dtype=np.uint8)
    path = tmp_path / "c.npz"
    with open(path, "wb") as f:
        np.savez(f, **members)
    before = path.read_bytes()
    est = _make(checkpoint_path=path, **EDITED_FIT)
    with pytest.raises(ValueError, match=r"^checkpoint_path=.*cannot resume from it"):
        _fit(est, X, y)
    assert not hasattr(est, "network_") and path.read_bytes() == before
    # the unedited file resumes
    members["checkpoint"] = epoch_one_checkpoint["checkpoint"]
    with open(path, "wb") as f:
        np.savez(f, **members)
    assert _fit(_make(checkpoint_path=path, **EDITED_FIT), X, y).n_iter_ == 3


@pytest.mark.parametrize("warm", [False, True])
def test_a_resumed_fit_reports_epochs_out_of_the_same_total(digits, tmp_path, capsys, warm):
    """verbose=1 after a resume: 'Epoch i/N' with the N of the uninterrupted fit, each remaining epoch once."""
    X, y = digits
    path = tmp_path / "c.npz"

    def make(**kw):
        if not warm:
            return _make(max_iter=3, layers=("conv4", "gap"), **kw)
        est = _fit(_make(max_iter=3, layers=("conv4", "gap")), X, y)   # 3 epochs, then a warm-start fit of 3 more
        return est.set_params(warm_start=True, **kw)

    with checkpoint_copies(path, tmp_path) as copies:
        _fit(make(checkpoint_path=path), X, y)
    total = 6 if warm else 3
    for done, copy in enumerate(copies[:-1], start=1):
        capsys.readouterr()
        _fit(make(checkpoint_path=copy, verbose=1), X, y)
        lines = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch ")]
        first = (3 if warm else 0) + done + 1
        assert lines == [f"{i}/{total}" for i in range(first, total + 1)], (copy.name, lines)


@pytest.mark.parametrize("meta", ["cross_val_score", "GridSearchCV"])
def test_clones_sharing_checkpoint_path_are_refused_with_the_reason(digits, tmp_path, meta):
    """Meta-estimators copy checkpoint_path to every clone: the second fit's refusal says so, the first file stays."""
    from sklearn.model_selection import GridSearchCV, cross_val_score

    X, y = digits
    est = _make(max_iter=1, layers=("conv4", "gap"), checkpoint_path=tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"checkpoint_path=.*other data or parameters.*GridSearchCV, "
                                         r"cross_val_score.*checkpoint_path=None"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if meta == "cross_val_score":
                cross_val_score(est, X, y, cv=2, error_score="raise")
            else:
                GridSearchCV(est, {"learning_rate": [1e-3, 1e-2]}, cv=2, error_score="raise").fit(X, y)
    assert (tmp_path / "c.npz").exists()
