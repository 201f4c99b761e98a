"""A checkpoint file read as a model predicts what the fit's model predicts, in the units of ``y``.

Sweeps both estimators (the regressor with 1-D and 2-D targets far from 0, which it standardizes inside),
every face that reads a model file (``minicnn.load``, ``minicnn.load_predictor``, ``minicnn predict``), a
finished fit's checkpoint against its final model file and a mid-fit checkpoint against the interrupted fit's
model, and checks that resuming from the new checkpoints still ends bit-identical to an uninterrupted fit.
"""

import csv
import io
import warnings

import numpy as np
import pytest

import minicnn
import minicnn._estimator_base as base
from minicnn import CNNClassifier, CNNRegressor

from helpers import run_cli

N_DIGITS = 96
CASES = ["classifier", "regressor-1d", "regressor-2d"]


def _case(name, digits):
    X, y = digits
    if name == "classifier":
        return CNNClassifier, X, y
    target = y.astype(np.float64) * 250.0 + 1000.0   # far from 0 and wide: standardized inside the regressor
    return CNNRegressor, X, (target if name == "regressor-1d" else np.stack([target, -target / 7], axis=1))


def _params(path):
    return dict(layers=("conv4", "maxpool", "dense8"), max_iter=4, backend="numpy", random_state=0,
                checkpoint_path=str(path))


def _quiet(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


def _faces(path, X, tmp_path):
    """Predictions of the model file ``path`` by every face that reads one."""
    np.save(tmp_path / "X.npy", X)
    code, out, err = run_cli("predict", "--model", path, tmp_path / "X.npy")
    assert code == 0, err
    return {"load": minicnn.load(path).predict(X), "load_predictor": minicnn.load_predictor(path).predict(X),
            "minicnn predict": np.array(list(csv.reader(io.StringIO(out))))}   # the CSV text, row by row


@pytest.mark.parametrize("name", CASES)
def test_a_finished_fit_s_checkpoint_predicts_as_its_model_file(name, digits, tmp_path):
    cls, X, y = _case(name, digits)
    ckpt, model = tmp_path / "fit.ckpt.npz", tmp_path / "model.npz"
    est = _quiet(lambda: cls(**_params(ckpt)).fit(X, y))
    est.save(model)
    expected = est.predict(X)
    if cls is CNNRegressor:
        assert np.abs(expected - y).mean() < np.abs(y - y.mean(axis=0)).mean() * 2   # in y's units, not ~0
    from_ckpt, from_model = _faces(ckpt, X, tmp_path), _faces(model, X, tmp_path)
    for face in from_ckpt:
        assert np.array_equal(from_ckpt[face], from_model[face]), face
    assert np.array_equal(from_ckpt["load"], expected) and np.array_equal(from_ckpt["load_predictor"], expected)


@pytest.mark.parametrize("name", CASES)
def test_a_mid_fit_checkpoint_predicts_in_y_units_and_still_resumes_exactly(name, digits, tmp_path, monkeypatch):
    cls, X, y = _case(name, digits)
    ckpt = tmp_path / "fit.ckpt.npz"
    real, calls = base.train_epoch, [0]

    def train_epoch(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt   # Ctrl-C in epoch 3: the fit keeps epoch 2, the checkpoint holds epoch 2
        return real(*args, **kwargs)

    monkeypatch.setattr(base, "train_epoch", train_epoch)
    interrupted = _quiet(lambda: cls(**_params(ckpt)).fit(X, y))
    monkeypatch.setattr(base, "train_epoch", real)
    assert interrupted.n_iter_ == 2
    for face in (minicnn.load, minicnn.load_predictor):
        assert np.array_equal(face(ckpt).predict(X), interrupted.predict(X)), face.__name__
    resumed = _quiet(lambda: cls(**_params(ckpt)).fit(X, y))
    whole = _quiet(lambda: cls(**_params(tmp_path / "other.ckpt.npz")).fit(X, y))
    assert resumed.n_iter_ == whole.n_iter_ == 4
    for a, b in zip(resumed._snapshot()[1], whole._snapshot()[1]):
        assert np.array_equal(a, b)
    assert np.array_equal(resumed.predict(X), whole.predict(X))


def test_a_regressor_checkpoint_without_its_standardized_output_layer_is_refused(digits, tmp_path):
    """The model part is folded into y's units: resuming needs the standardized layer beside it."""
    import zipfile

    _, X, y = _case("regressor-1d", digits)
    ckpt = tmp_path / "fit.ckpt.npz"
    _quiet(lambda: CNNRegressor(**_params(ckpt)).fit(X, y))
    damaged = tmp_path / "damaged.ckpt.npz"
    with zipfile.ZipFile(ckpt) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            if not item.filename.startswith("standardized.w"):
                dst.writestr(item, src.read(item.filename))
    with pytest.raises(ValueError, match=r"checkpoint_path=.*missing array 'standardized.w'"):
        _quiet(lambda: CNNRegressor(**_params(damaged)).fit(X, y))
