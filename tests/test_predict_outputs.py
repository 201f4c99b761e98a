"""Prediction outputs: the softmax row kernels against their NumPy twins, the probabilities of every backend, and the output check.

``minicnn._predict.softmax`` runs ``softmax_shift_rows``, NumPy's ``exp`` and
``softmax_normalize_rows``; the compiled kernels must give the reference's bits
(same row maximum, same pairwise order of the row sum), so ``predict_proba`` is
the float64 textbook softmax of the logits, bit for bit, on every backend.
"""

import warnings

import numpy as np
import pytest

from minicnn import CNNClassifier, load_predictor
from minicnn._predict import softmax
from minicnn.backend import get_backend
from minicnn.backend import reference as ref
from minicnn.threads import thread_limits

from helpers import importable_backends, kernel_module

#: Row lengths around NumPy's pairwise-sum boundaries (8 partial sums, blocks of 128).
SHAPES = [(1, 1), (1, 10), (64, 10), (3, 7), (5, 8), (5, 9), (4, 16), (4, 17), (2, 128), (2, 129), (3, 1000),
          (1030, 2), (0, 10)]


def textbook_softmax(logits):
    """The float64 softmax as NumPy writes it (what predict_proba returned before the row kernels)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _logits(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    scale = np.array([0.1, 1.0, 30.0, 1e6])[rng.integers(0, 4, size=(shape[0], 1))]
    return np.ascontiguousarray(rng.standard_normal(shape) * scale, dtype=dtype)


@pytest.mark.parametrize("backend", ["numpy", "cython"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_softmax_row_kernels_bit_identical_to_reference(backend, dtype, shape, n_threads):
    module = kernel_module(backend)
    logits = _logits(shape, dtype, seed=shape[0] * 1009 + shape[1])
    expected = np.empty(shape)
    ref.softmax_shift_rows(expected, logits)
    got = np.full(shape, np.nan)
    with thread_limits(n_threads):
        module.softmax_shift_rows(got, logits)
    np.testing.assert_array_equal(got, expected)
    np.exp(expected, out=expected)
    got = np.exp(got)
    ref.softmax_normalize_rows(expected)
    with thread_limits(n_threads):
        module.softmax_normalize_rows(got)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", importable_backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_is_the_textbook_float64_softmax_bit_for_bit(backend, dtype, shape):
    logits = _logits(shape, dtype, seed=7 + shape[1])
    got = softmax(logits, get_backend(backend))
    assert got.dtype == np.float64 and got.shape == shape
    np.testing.assert_array_equal(got, textbook_softmax(logits))


@pytest.mark.parametrize("backend", importable_backends())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_non_finite_rows_as_the_textbook_softmax(backend, dtype):
    """A NaN or +inf logit gives an all-NaN row (predict then raises); -inf alone is a zero probability."""
    logits = _logits((7, 10), dtype, seed=3)
    logits[0, 0] = np.nan
    logits[1, 9] = np.nan
    logits[2, 4] = np.inf
    logits[3, 2] = -np.inf
    logits[4, :] = -np.inf
    logits[5, [1, 6]] = np.inf
    with np.errstate(invalid="ignore"):
        expected = textbook_softmax(logits)
        got = softmax(logits, get_backend(backend))
    np.testing.assert_array_equal(got, expected)   # NaN where NaN (assert_array_equal treats NaNs as equal)
    assert np.isnan(got[[0, 1, 2, 4, 5]]).all() and np.isfinite(got[[3, 6]]).all() and got[3, 2] == 0.0


@pytest.fixture(scope="module")
def digits_fit():
    rng = np.random.default_rng(0)
    X = rng.random((96, 8, 8, 1), dtype=np.float32)
    y = np.arange(96) % 10
    return X, y


@pytest.mark.parametrize("backend", importable_backends())
def test_predict_proba_is_the_textbook_softmax_of_the_network_output(backend, digits_fit, tmp_path):
    X, y = digits_fit
    clf = CNNClassifier(layers=("conv4", "maxpool", "dense8"), padding="same", max_iter=1, backend=backend,
                        n_threads=1, random_state=0).fit(X, y)
    with thread_limits(1):
        logits = clf.network_.forward(X, training=False).copy()
        one = clf.network_.forward(X[:1], training=False).copy()
    expected = textbook_softmax(logits)
    np.testing.assert_array_equal(clf.predict_proba(X), expected)
    np.testing.assert_array_equal(clf.predict_proba(X[:1]), textbook_softmax(one))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[logits.argmax(axis=1)])
    clf.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(load_predictor(tmp_path / "m.npz").predict_proba(X), expected)


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_softmax_row_kernels_refuse_mismatched_outputs(backend):
    module = kernel_module(backend)
    with pytest.raises(ValueError):
        module.softmax_shift_rows(np.empty((3, 4)), np.zeros((3, 5), np.float32))
    if backend == "cython":   # the compiled contract: float64 C-contiguous 2-D outputs, named in the error
        with pytest.raises(ValueError, match="z has dtype"):
            module.softmax_shift_rows(np.empty((3, 4), np.float32), np.zeros((3, 4), np.float32))
        with pytest.raises(ValueError, match="p must be C-contiguous"):
            module.softmax_normalize_rows(np.empty((4, 3)).T)


# ----------------------------------------------------------------------------- the output check
def test_output_check_refuses_non_finite_rows_and_counts_them():
    from minicnn._predict import _finite

    images = np.full((4, 2), 7.0, np.float32)
    for size in (4, 3000):   # one dot product below 8192 values, a sum above
        values = np.ones((size, 3))
        assert _finite(values, images) is values
        values[1, 2], values[2, 0], values[2, 1] = np.nan, np.inf, -np.inf
        with pytest.raises(ValueError, match=r"non-finite\) for 2 of %d samples.*largest \|value\| in X: 7" % size):
            _finite(values, images)


def test_output_check_accepts_finite_outputs_whose_sum_overflows():
    """Outputs of a float64 network beyond float32 range are finite: never refused for an overflowing sum."""
    from minicnn._predict import _finite

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # and no overflow warning from the check itself
        for values in (np.full((2, 3), 1e200), np.full((4000, 3), 1e200)):
            assert _finite(values, np.zeros((1, 1), np.float64)) is values
    with np.errstate(over="ignore"):
        values = np.full((4000, 3), 1e305)   # its sum overflows
        assert _finite(values, np.zeros((1, 1), np.float64)) is values
