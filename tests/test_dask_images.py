"""dask-ml's ParallelPostFit and Incremental on 3-D and 4-D dask image arrays (minicnn.dask_wrappers).

Runs on a real LocalCluster of 2 worker processes (127.0.0.1, no dashboard); skipped without dask,
distributed and dask-ml.
"""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
pytest.importorskip("dask_ml")

from distributed import Client, LocalCluster, get_task_stream  # noqa: E402
from sklearn.base import clone  # noqa: E402

from minicnn import CNNClassifier, CNNRegressor  # noqa: E402
from minicnn.dask_wrappers import Incremental, ParallelPostFit, flatten_images  # noqa: E402
from minicnn.datasets import load_digits_images  # noqa: E402

TIMEOUT = 120
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=TIMEOUT)
        yield client


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:240], y[:240]


def computed(client, *collections):
    """Compute on the cluster; a hung cluster fails the test after TIMEOUT seconds."""
    return [future.result(timeout=TIMEOUT) for future in client.compute(list(collections))]


def small(cls=CNNClassifier, **params):
    return cls(**{**dict(layers=("conv4", "maxpool", "dense16"), padding="same", max_iter=2, batch_size=32,
                         backend="cython", random_state=0), **params})


def layouts(X):
    """The same images as 4-D channels-last, 4-D channels-first and 3-D arrays."""
    return {"channels_last": X, "channels_first": X.transpose(0, 3, 1, 2), "3d": X[..., 0]}


@pytest.mark.parametrize("layout", ["channels_last", "channels_first", "3d"])
def test_parallel_post_fit_predicts_image_arrays_as_in_memory(client, digits, layout):
    X, y = digits
    X = layouts(X)[layout]
    fmt = "channels_first" if layout == "channels_first" else "channels_last"
    model = ParallelPostFit(small(data_format=fmt)).fit(X, y)
    big = np.concatenate([X] * 2)
    lazy = da.from_array(big, chunks=(90,) + (-1,) * (X.ndim - 1))
    with get_task_stream(client) as stream:
        labels, proba, log_proba = model.predict(lazy), model.predict_proba(lazy), model.predict_log_proba(lazy)
        assert labels.numblocks == (6,) and proba.numblocks == (6, 1)
        labels, proba, log_proba = computed(client, labels, proba, log_proba)
    assert len(stream.data) >= 6   # ran as tasks on the cluster
    np.testing.assert_array_equal(labels, model.estimator.predict(big))
    np.testing.assert_array_equal(proba, model.estimator.predict_proba(big))
    # NumPy's vectorized log differs in the last ulp with the block length
    np.testing.assert_allclose(log_proba, model.estimator.predict_log_proba(big), rtol=0, atol=1e-12)
    assert model.score(lazy, da.from_array(np.concatenate([y] * 2), chunks=90)) == model.estimator.score(
        big, np.concatenate([y] * 2))


def test_parallel_post_fit_regressor_and_split_trailing_chunks(client, digits):
    X, y = digits
    model = ParallelPostFit(small(CNNRegressor)).fit(X, y.astype(np.float32))
    lazy = da.from_array(X, chunks=(60, 4, -1, -1))   # image rows split too: gathered per sample block
    got = computed(client, model.predict(lazy))[0]
    np.testing.assert_array_equal(got, model.estimator.predict(X))
    assert flatten_images(lazy).chunks == ((60, 60, 60, 60), (64,))


@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_incremental_pass_equals_the_same_partial_fit_calls_locally(client, digits, cls):
    X, y = digits
    target = y if cls is CNNClassifier else y.astype(np.float32)
    kwargs = {"classes": np.arange(10)} if cls is CNNClassifier else {}
    chunks = 60
    local = small(cls)
    for start in range(0, len(X), chunks):
        local.partial_fit(X[start:start + chunks], target[start:start + chunks], **kwargs)
    model = Incremental(small(cls), shuffle_blocks=False)
    Xd, yd = da.from_array(X, chunks=(chunks, -1, -1, -1)), da.from_array(target, chunks=chunks)
    with get_task_stream(client) as stream:
        model.fit(Xd, yd, **kwargs)
    assert len(stream.data) >= 4
    remote = model.estimator_
    assert remote.n_iter_ == local.n_iter_ == 4 and remote.input_shape == (8, 8, 1)
    for (p, _), (q, _) in zip(remote.network_.params_and_grads(), local.network_.params_and_grads()):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(computed(client, model.predict(Xd))[0], local.predict(X))
    model.partial_fit(Xd, yd, **kwargs)   # a second pass continues from estimator_
    for start in range(0, len(X), chunks):
        local.partial_fit(X[start:start + chunks], target[start:start + chunks])
    assert model.estimator_.n_iter_ == 8
    np.testing.assert_array_equal(model.estimator_.predict(X), local.predict(X))


def test_incremental_refuses_a_conflicting_input_shape(client, digits):
    X, y = digits
    Xd, yd = da.from_array(X, chunks=(120, -1, -1, -1)), da.from_array(y, chunks=120)
    with pytest.raises(ValueError, match=r"per-sample shape \(8, 8, 1\) but the estimator has input_shape=\(4, 16\)"):
        Incremental(small(input_shape=(4, 16))).fit(Xd, yd, classes=np.arange(10))
    model = Incremental(clone(small(input_shape=(8, 8, 1))), shuffle_blocks=False).fit(Xd, yd, classes=np.arange(10))
    assert model.estimator_.n_iter_ == 2
