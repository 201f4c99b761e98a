"""Checkpoints (``checkpoint_path``): resume after SIGKILL with the weights of an uninterrupted fit, refusals."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from helpers import checkpoint_copies, importable_backends
from minicnn import CNNClassifier, CNNRegressor
from minicnn import checkpoint

N_DIGITS = 240

#: Settings under which every kind of state matters: early stopping (split, best weights, counters), the
#: adaptive schedule, dropout steps, augmentation, BatchNorm statistics, Adam and SGD moments.
SETTINGS = [
    dict(layers=("conv4", "maxpool", "dense16"), early_stopping=True, validation_fraction=0.2,
         lr_schedule="adaptive", n_iter_no_change=50, augment=("shift1",)),
    dict(layers=("conv4", "maxpool", "dense16"), optimizer="sgd", batch_norm=True, lr_schedule="cosine",
         dropout="after_each_layer", dropout_rate=0.2),
]


def _make(cls=CNNClassifier, n_threads=1, **kw):
    params = dict(max_iter=5, backend="numpy", n_threads=n_threads, random_state=3, batch_size=32)
    params.update(kw)
    return cls(**params)


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning of the short fits
        return est.fit(X, y)


def _weights(est):
    return [a.copy() for a in est._snapshot()[1]]


def _same(a, b):
    wa, wb = _weights(a), _weights(b)
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


@pytest.mark.parametrize("backend", importable_backends(("numpy", "cython")))
@pytest.mark.parametrize("setting", range(len(SETTINGS)))
def test_resume_after_each_epoch_equals_uninterrupted(digits, tmp_path, setting, backend):
    """A checkpoint of every epoch, copied aside, resumes to exactly the uninterrupted model and curves."""
    X, y = digits
    kw = dict(SETTINGS[setting], backend=backend)
    reference = _fit(_make(**kw), X, y)
    path = tmp_path / "fit.npz"
    with checkpoint_copies(path, tmp_path) as copies:
        written = _fit(_make(checkpoint_path=path, **kw), X, y)
    assert _same(written, reference)
    assert len(copies) == reference.n_iter_ + 1   # every epoch, then the finished fit
    for copy in copies:   # resumed with another thread count: results do not depend on it (not fingerprinted)
        resumed = _fit(_make(checkpoint_path=copy, **kw, n_threads=2), X, y)
        assert _same(resumed, reference), copy.name
        assert resumed.loss_curve_ == reference.loss_curve_
        assert resumed.validation_scores_ == reference.validation_scores_
        assert resumed.validation_loss_curve_ == reference.validation_loss_curve_
        assert resumed.n_iter_ == reference.n_iter_ and resumed.t_ == reference.t_
        assert np.array_equal(resumed.predict_proba(X), reference.predict_proba(X))


def test_regressor_and_warm_start_resume(digits, tmp_path):
    """The regressor resumes too, and a warm_start continuation is fingerprinted by its starting model."""
    X, y = digits
    target = y.astype(np.float32) / 9
    path = tmp_path / "reg.npz"
    reference = _fit(_make(CNNRegressor, layers=("conv4", "gap"), dropout="none"), X, target)
    _fit(_make(CNNRegressor, layers=("conv4", "gap"), dropout="none", checkpoint_path=path), X, target)
    resumed = _fit(_make(CNNRegressor, layers=("conv4", "gap"), dropout="none", checkpoint_path=path), X, target)
    assert _same(resumed, reference)
    # warm start: another starting model has another fingerprint
    est = _fit(_make(CNNRegressor, layers=("conv4", "gap"), dropout="none", max_iter=2), X, target)
    est.set_params(warm_start=True, checkpoint_path=path)
    with pytest.raises(ValueError, match="checkpoint_path=.*other data or parameters"):
        _fit(est, X, target)
    assert est.n_iter_ == 2   # left as before the call


CHILD = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    sys.path.insert(0, {tests!r})
    from helpers import first_digits
    from minicnn import CNNClassifier
    warnings.simplefilter("ignore")
    X, y = first_digits({n})
    CNNClassifier(checkpoint_path={path!r}, **{params!r}).fit(X, y)
""")


def _params(**kw):
    p = dict(max_iter=20, backend="numpy", n_threads=1, random_state=3, batch_size=16, early_stopping=True,
             validation_fraction=0.2, n_iter_no_change=50, layers=("conv8", "maxpool", "dense32"))
    p.update(kw)
    return p


def _wait_for_versions(path, k, proc, timeout=300):
    """Wait until ``path`` was (re)placed ``k`` times (each checkpoint is a new inode); False if the child ended."""
    seen, last = 0, None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            key = None
        if key is not None and key != last:
            seen, last = seen + 1, key
            if seen >= k:
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError("the child wrote no checkpoint in time")


@pytest.mark.parametrize("case", range(4))
def test_sigkill_at_random_points_then_resume(digits, tmp_path, case):
    """SIGKILL after the k-th checkpoint at a random offset (seeded), then fit again: the uninterrupted weights."""
    X, y = digits
    plan = np.random.default_rng(case)
    k = int(plan.integers(1, 5))
    offset = float(plan.uniform(0, 0.3))
    path = str(tmp_path / "kill.npz")
    code = CHILD.format(tests=os.path.dirname(__file__), n=N_DIGITS, path=path, params=_params())
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([repo] + sys.path))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        if _wait_for_versions(path, k, proc):
            time.sleep(offset)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()   # killed while fitting
    assert os.path.exists(path)
    resumed = _fit(CNNClassifier(checkpoint_path=path, **_params()), X, y)
    reference = _fit(CNNClassifier(**_params()), X, y)
    assert _same(resumed, reference)
    assert resumed.loss_curve_ == reference.loss_curve_


def test_refusals_name_checkpoint_path(digits, tmp_path):
    """Other data, other parameters, a newer format, a truncated file: ValueError naming checkpoint_path."""
    X, y = digits
    path = tmp_path / "c.npz"
    _fit(_make(checkpoint_path=path, max_iter=2), X, y)
    before = path.read_bytes()
    cases = {
        "other X": (lambda: _make(checkpoint_path=path, max_iter=2), X[::-1].copy(), y[::-1].copy()),
        "other y": (lambda: _make(checkpoint_path=path, max_iter=2), X, (y + 1) % 10),
        "other parameter": (lambda: _make(checkpoint_path=path, max_iter=3), X, y),
        "other seed": (lambda: _make(checkpoint_path=path, max_iter=2, random_state=4), X, y),
        "other backend": (lambda: _make(checkpoint_path=path, max_iter=2, backend="numba"), X, y),
    }
    for name, (make, Xc, yc) in cases.items():
        est = make()
        with pytest.raises(ValueError, match=r"checkpoint_path=.*other data or parameters"):
            _fit(est, Xc, yc)
        assert not hasattr(est, "network_"), name
    # the parameters that do not change the result are not fingerprinted
    _fit(_make(checkpoint_path=path, max_iter=2, n_threads=2, verbose=0), X, y)
    assert path.read_bytes() == before
    # truncated
    path.write_bytes(before[: len(before) // 2])
    with pytest.raises(ValueError, match=r"checkpoint_path=.*cannot resume from it"):
        _fit(_make(checkpoint_path=path, max_iter=2), X, y)
    # newer format: rewrite the checkpoint member's version
    import io
    import json
    import zipfile

    members = dict(np.load(io.BytesIO(before)))
    fields = json.loads(members["checkpoint"].tobytes())
    fields["version"] = checkpoint.VERSION + 1
    members["checkpoint"] = np.frombuffer(json.dumps(fields).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **members)
    assert zipfile.is_zipfile(path)
    with pytest.raises(ValueError, match=r"checkpoint_path=.*format version 2"):
        _fit(_make(checkpoint_path=path, max_iter=2), X, y)
    # an optimizer moment of the wrong size (or dtype)
    for change in (lambda a: a[:-1], lambda a: a.astype(np.float64)):
        members = dict(np.load(io.BytesIO(before)))
        members["optimizer.0.0"] = change(members["optimizer.0.0"])
        with open(path, "wb") as f:
            np.savez(f, **members)
        with pytest.raises(ValueError, match=r"checkpoint_path=.*optimizer state does not match"):
            _fit(_make(checkpoint_path=path, max_iter=2), X, y)
    # partial_fit
    with pytest.raises(ValueError, match=r"checkpoint_path=.*partial_fit"):
        _make(checkpoint_path=tmp_path / "p.npz").partial_fit(X, y, classes=np.arange(10))


@pytest.mark.parametrize("kind", ["missing directory", "read-only directory", "directory", "read-only file"])
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_unwritable_path_is_refused_before_training(digits, tmp_path, kind, cls):
    X, y = digits
    if kind == "missing directory":
        path = tmp_path / "nope" / "c.npz"
    elif kind == "read-only directory":
        directory = tmp_path / "ro"
        directory.mkdir()
        directory.chmod(stat.S_IRUSR | stat.S_IXUSR)
        path = directory / "c.npz"
    elif kind == "directory":
        path = tmp_path
    else:
        path = tmp_path / "ro.npz"
        path.write_bytes(b"")
        path.chmod(stat.S_IRUSR)
    est = _make(cls, checkpoint_path=path, max_iter=1)
    calls = []
    est._train = lambda *a, **k: calls.append(1)   # never reached
    with pytest.raises(ValueError, match=r"checkpoint_path="):
        est.fit(X, y)
    assert calls == [] and not hasattr(est, "network_")


@pytest.mark.parametrize("value", ["", 3, b"x.npz", True])
def test_invalid_checkpoint_path_values(value):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="checkpoint_path"):
        _make(checkpoint_path=value).fit(np.zeros((4, 4, 4, 1), np.float32), [0, 1, 0, 1])


def test_cli_fit_checkpoint_resumes_to_the_same_model(tmp_path):
    """``minicnn fit --checkpoint PATH``: a second run with the checkpoint gives the model of the first."""
    from helpers import run_cli
    from minicnn import load

    options = ["--epochs", "2", "--layers", "conv4,maxpool", "--backend", "numpy", "--quiet"]
    ckpt = tmp_path / "c.npz"
    code, out, err = run_cli("fit", *options, "--checkpoint", str(ckpt), "--out", str(tmp_path / "a.npz"))
    assert code == 0, err
    assert ckpt.exists() and "s (2 epochs)" in out, out
    code, out, err = run_cli("fit", *options, "--checkpoint", str(ckpt), "--out", str(tmp_path / "b.npz"))
    assert code == 0, err
    assert "s (0 epochs after resuming at epoch 2; 2 epochs in all)" in out, out   # what this run trained
    a, b = load(tmp_path / "a.npz"), load(tmp_path / "b.npz")
    assert _same(a, b) and a.n_iter_ == b.n_iter_ == 2
    code, out, err = run_cli("fit", *options, "--checkpoint", str(tmp_path / "missing" / "c.npz"))
    assert code != 0 and "--checkpoint " in err and "checkpoint_path" not in err and len(err.strip().splitlines()) == 1, err


def test_every_fingerprinted_parameter_changes_the_fingerprint(digits):
    """Each parameter of the table but verbose, n_threads and checkpoint_path is part of the fingerprint."""
    from minicnn.params import PARAMS

    X, y = digits
    images, targets = X, y.astype(np.int64)
    base = _make()
    reference = checkpoint.fingerprint(base, images, targets, None)
    other = {"int": lambda v: (v or 1) + 1, "float": lambda v: (v or 0.1) / 2, "bool": lambda v: not v,
             "choice": None, "tokens": lambda v: ("conv2",), "dropout": lambda v: "none", "rates": lambda v: 0.4 if v == 0.25 else 0.25,
             "shape": lambda v: (8, 8, 1), "seed": lambda v: 4, "verbose": lambda v: 2, "augment": lambda v: ("hflip",),
             "class_weight": lambda v: "balanced", "path": lambda v: "elsewhere.npz"}
    for p in PARAMS:
        value = base.get_params()[p.name]
        if p.kind == "choice":
            changed = next(c for c in p.choices if c != value)
        else:
            changed = other[p.kind](value)
        est = _make(**{p.name: changed})
        same = checkpoint.fingerprint(est, images, targets, None) == reference
        assert same == (p.name in checkpoint.NOT_FINGERPRINTED), (p.name, changed)
    assert checkpoint.fingerprint(base, images, targets, np.ones(len(y))) != reference   # sample weights
    assert checkpoint.fingerprint(base, images, targets, None, start=[np.zeros(3)]) != reference   # warm start


def test_resume_with_random_state_none_continues_that_fit(digits, tmp_path):
    """random_state=None: the checkpoint keeps the fit's seed, so a resumed fit ends as that fit did."""
    X, y = digits
    path = tmp_path / "c.npz"
    first_epochs = tmp_path / "after1.npz"
    original = checkpoint.Checkpoint.write

    def keep_first(self, est, rng, **state):
        original(self, est, rng, **state)
        if est.n_iter_ == 1 and not first_epochs.exists():
            first_epochs.write_bytes(path.read_bytes())

    checkpoint.Checkpoint.write = keep_first
    try:
        written = _fit(_make(checkpoint_path=path, random_state=None, max_iter=3), X, y)
    finally:
        checkpoint.Checkpoint.write = original
    resumed = _fit(_make(checkpoint_path=first_epochs, random_state=None, max_iter=3), X, y)
    assert _same(resumed, written) and resumed.loss_curve_ == written.loss_curve_


def test_warm_start_from_a_loaded_model_resumes(digits, tmp_path):
    """A loaded model (no optimizer state yet) continued with warm_start and a checkpoint resumes exactly."""
    from minicnn import load

    X, y = digits
    base = _fit(_make(max_iter=2), X, y)
    base.save(tmp_path / "m.npz")
    path = tmp_path / "c.npz"
    kept = tmp_path / "after.npz"
    original = checkpoint.Checkpoint.write

    def keep_first(self, est, rng, **state):
        original(self, est, rng, **state)
        if not kept.exists():
            kept.write_bytes(path.read_bytes())

    def continued(checkpoint_path):
        est = load(tmp_path / "m.npz")
        est.set_params(warm_start=True, max_iter=3, checkpoint_path=checkpoint_path)
        return _fit(est, X, y)

    checkpoint.Checkpoint.write = keep_first
    try:
        written = continued(path)
    finally:
        checkpoint.Checkpoint.write = original
    resumed = continued(kept)
    assert written.n_iter_ == resumed.n_iter_ == 5
    assert _same(resumed, written) and resumed.loss_curve_ == written.loss_curve_
