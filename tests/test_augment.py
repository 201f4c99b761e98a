"""Training-batch augmentation: the kernel in every backend against its NumPy twin, the tokens, the estimator."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from minicnn import CNNClassifier, CNNRegressor, training
from minicnn.augment import AUGMENT_STREAM, Augmenter, parse_augment
from minicnn.backend import get_backend
from minicnn.backend.reference.augment import augment_draws
from minicnn.backend.hash_rng import dropout_key
from minicnn.datasets import load_digits_images
from minicnn.threads import thread_limits

from helpers import importable_backends

FAST = importable_backends(("numba", "cython"))
SETTINGS = [(0, 0, False), (2, 0, False), (0, 3, False), (0, 0, True), (1, 2, True), (9, 9, True)]


def run(backend, out_shape, x, index, keys, setting, dtype):
    out = np.full(out_shape, np.nan, dtype=dtype)
    get_backend(backend).augment_batch(out, x, index, *keys, *setting)
    return out


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("setting", SETTINGS)
def test_kernel_matches_the_numpy_twin(backend, dtype, setting, rng):
    x = rng.random((11, 5, 7, 3)).astype(dtype)
    index = rng.integers(0, 11, 9).astype(np.int64)
    keys = dropout_key(123, AUGMENT_STREAM, 4)
    ref = run("numpy", (9, 5, 7, 3), x, index, keys, setting, dtype)
    assert not np.isnan(ref).any()
    np.testing.assert_array_equal(run(backend, ref.shape, x, index, keys, setting, dtype), ref)


@pytest.mark.parametrize("backend", FAST)
def test_kernel_is_thread_count_independent(backend, rng, numba_threads):
    x = rng.random((40, 32, 32, 3), dtype=np.float32)   # 128 x 32 x 32 x 3 elements: Cython goes parallel
    index = rng.integers(0, 40, 128).astype(np.int64)
    keys = dropout_key(7, AUGMENT_STREAM, 0)
    outs = []
    for n in (1, 2):
        with thread_limits(n), numba_threads(n):
            outs.append(run(backend, (128, 32, 32, 3), x, index, keys, (3, 4, True), np.float32))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], run("numpy", (128, 32, 32, 3), x, index, keys, (3, 4, True), np.float32))


def test_each_token_does_what_it_says(rng):
    """shift: reflected translation; crop: zero-padded crop; hflip: mirror; none: the rows themselves."""
    x = rng.random((64, 6, 6, 1), dtype=np.float32) + 1   # no zeros in the data
    index = np.arange(64, dtype=np.int64)
    keys = dropout_key(1, AUGMENT_STREAM, 0)
    np.testing.assert_array_equal(run("numpy", x.shape, x, index, keys, (0, 0, False), np.float32), x)
    flipped = run("numpy", x.shape, x, index, keys, (0, 0, True), np.float32)
    mirror = augment_draws(64, *keys, 0, 0, True)[4]
    assert 10 < mirror.sum() < 54
    np.testing.assert_array_equal(flipped[mirror], x[mirror, :, ::-1])
    np.testing.assert_array_equal(flipped[~mirror], x[~mirror])
    shifted = run("numpy", x.shape, x, index, keys, (2, 0, False), np.float32)
    sy, sx = augment_draws(64, *keys, 2, 0, False)[:2]
    assert set(sy.tolist()) == set(range(-2, 3)) and (shifted > 0).all()   # every offset; reflection: no zeros
    for b in range(64):
        padded = np.pad(x[b, :, :, 0], 2, mode="symmetric")
        np.testing.assert_array_equal(shifted[b, :, :, 0], padded[2 - sy[b]:8 - sy[b], 2 - sx[b]:8 - sx[b]])
    cropped = run("numpy", x.shape, x, index, keys, (0, 3, False), np.float32)
    cy, cx = augment_draws(64, *keys, 0, 3, False)[2:4]
    for b in range(64):
        padded = np.pad(x[b, :, :, 0], 3)
        np.testing.assert_array_equal(cropped[b, :, :, 0], padded[3 + cy[b]:9 + cy[b], 3 + cx[b]:9 + cx[b]])


@pytest.mark.parametrize("augment, expected", [((), (0, 0, False)), (["hflip"], (0, 0, True)),
                                               (("crop4", "shift1", "hflip"), (1, 4, True))])
def test_parse_augment(augment, expected):
    assert parse_augment(augment) == expected


@pytest.mark.parametrize("bad", ["shift2", ("shift0",), ("shift",), ("flip",), ("crop-1",), ("hflip", "hflip"),
                                 ("shift1", "shift2"), (2,), None, ("Shift1",), ("shift01",)])
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_bad_augment_is_an_error_naming_the_parameter_and_value(cls, bad):
    X, y = np.zeros((4, 6, 6, 1), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises((InvalidParameterError, ValueError), match=r"augment") as info:
        cls(augment=bad).fit(X, y)
    assert repr(bad) in str(info.value)


def digits_fit(**params):
    X, y = load_digits_images()
    return X[:200], y[:200], dict(layers=("conv4", "maxpool", "dense16"), padding="same", max_iter=2,
                                  random_state=0, **params)


def test_batches_are_identical_on_every_backend(monkeypatch):
    """The augmented batches a fit trains on depend on the seed only, not on the backend."""
    X, y, params = digits_fit(augment=("shift2", "crop1", "hflip"))
    seen = {}
    original = training.train_step

    def spy(network, loss_fn, optimizer, xb, yb, wb=None):
        seen.setdefault(network.backend, []).append(xb.copy())
        return original(network, loss_fn, optimizer, xb, yb, wb)

    monkeypatch.setattr(training, "train_step", spy)
    for backend in importable_backends(("numpy", "numba", "cython")):
        CNNClassifier(**params, backend=backend).fit(X, y)
    batches = list(seen.values())
    assert len(batches) >= 2 and len(batches[0]) == 8   # 2 epochs x 4 batches
    for other in batches[1:]:
        for a, b in zip(batches[0], other):
            np.testing.assert_array_equal(a, b)
    plain = CNNClassifier(**{**params, "augment": ()}, backend="numpy")
    seen.clear()
    plain.fit(X, y)
    assert not all(np.array_equal(a, b) for a, b in zip(batches[0], seen["numpy"]))


def test_augmentation_trains_differently_but_never_touches_predict(monkeypatch):
    X, y, params = digits_fit()
    plain = CNNClassifier(**params, backend="cython").fit(X, y)
    augmented = clone(plain).set_params(augment=("hflip",)).fit(X, y)
    assert augmented.loss_curve_ != plain.loss_curve_
    calls = []
    monkeypatch.setattr(Augmenter, "gather", lambda *a: calls.append(a))
    augmented.predict(X)
    augmented.predict_proba(X)
    assert calls == []


def test_warm_start_and_partial_fit_continue_from_the_fit_generator():
    """Each epoch draws a new augmentation seed from the fit's generator: continued training is reproducible."""
    X, y, params = digits_fit(augment=("shift1",), backend="cython")
    a = CNNClassifier(**params).fit(X, y)
    b = CNNClassifier(**params).fit(X, y)
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    for (p, _), (q, _) in zip(a.network_.params_and_grads(), b.network_.params_and_grads()):
        np.testing.assert_array_equal(p, q)
    a.set_params(warm_start=True).fit(X, y)
    assert a.n_iter_ == 5
