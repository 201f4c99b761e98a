"""Sequential: whole-network gradient check, summary, learning, seeded reproducibility."""

import numpy as np
import pytest

from minicnn.datasets import load_digits_images
from minicnn.layers import (Activation, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D,
                            SpatialDropout2D)
from minicnn.losses import softmax_cross_entropy
from minicnn.network import Sequential
from minicnn.optim import SGD, Adam
from minicnn.training import train_epoch

from gradcheck import ATOL, RTOL, numerical_grad


def small_net(backend="numpy", dtype=np.float64):
    return Sequential([
        Conv2D(3, 3, padding="same", activation="relu"), BatchNorm(), SpatialDropout2D(0.3),
        MaxPool2D(2), Conv2D(4, 2, activation="tanh"), AvgPool2D(2, padding="same"), Flatten(),
        Dense(5, activation="leaky_relu"), Dropout(0.2), Dense(3),
    ], backend=backend, dtype=dtype)


def test_whole_network_gradient_check():
    rng = np.random.default_rng(0)
    net = small_net()
    net.build((6, 6, 2), rng=rng)
    x = rng.standard_normal((3, 6, 6, 2))
    labels = np.array([0, 2, 1])
    steps = [layer for layer in net.layers if layer.stochastic]

    def loss():
        for layer in steps:
            layer.step = 5
        return softmax_cross_entropy(net.forward(x, training=True), labels)[0]

    for layer in steps:
        layer.step = 5
    _, grad = softmax_cross_entropy(net.forward(x, training=True), labels)
    net.backward(grad)
    analytic = [g.copy() for _, g in net.params_and_grads()]
    for (param, _), got in zip(net.params_and_grads(), analytic):
        np.testing.assert_allclose(got, numerical_grad(loss, param), rtol=RTOL, atol=ATOL)


def test_summary_marks_dropout_and_counts_parameters():
    net = small_net()
    net.build((6, 6, 2), rng=np.random.default_rng(0))
    text = net.summary()
    assert text.count("<-- dropout") == 2
    assert "SpatialDropout2D(rate=0.3, spatial" in text
    assert f"Total params: {net.n_params:,}" in text
    assert net.n_params == (3 * 3 * 2 * 3 + 3) + 2 * 3 + (2 * 2 * 3 * 4 + 4) + (4 * 5 + 5) + (5 * 3 + 3)
    assert "(None, 3, 3, 3)" in text


def digits_subset():
    X, y = load_digits_images()
    order = np.random.default_rng(0).permutation(len(X))   # the file is ordered by writer
    return X[order], y[order]


def fit_digits(seed, epochs=8, backend="numpy"):
    X, y = digits_subset()
    rng = np.random.default_rng(seed)
    net = Sequential([Conv2D(8, 3, padding="same", activation="relu"), MaxPool2D(2), Dropout(0.25),
                      Flatten(), Dense(32, activation="relu"), Dense(10)], backend=backend)
    net.build((8, 8, 1), rng=rng)
    opt = Adam(3e-3)
    losses = [train_epoch(net, softmax_cross_entropy, opt, X[:1200], y[:1200], 32, rng) for _ in range(epochs)]
    accuracy = (net.forward(X[1200:]).argmax(axis=1) == y[1200:]).mean()
    return net, losses, accuracy


def test_small_network_learns_digits():
    _, losses, accuracy = fit_digits(0)
    assert losses[-1] < 0.25 * losses[0]
    assert accuracy > 0.93


def test_same_seed_same_weights_and_different_seed_differs():
    a, _, _ = fit_digits(1, epochs=2)
    b, _, _ = fit_digits(1, epochs=2)
    c, _, _ = fit_digits(2, epochs=2)
    for (pa, _), (pb, _), (pc, _) in zip(a.params_and_grads(), b.params_and_grads(), c.params_and_grads()):
        np.testing.assert_array_equal(pa, pb)
        assert not np.array_equal(pa, pc)


def test_xor_like_problem_is_learned_with_sgd_nesterov():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (400, 2))
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)
    net = Sequential([Dense(16, activation="tanh"), Dense(16, activation="relu"), Dense(2)],
                     backend="numpy", dtype=np.float64)
    net.build((2,), rng=rng)
    opt = SGD(0.1, momentum=0.9, nesterov=True)
    for _ in range(60):
        train_epoch(net, softmax_cross_entropy, opt, X, y, 32, rng)
    assert (net.forward(X).argmax(axis=1) == y).mean() > 0.95


def test_mc_pass_keeps_dropout_active_but_batchnorm_in_inference():
    net = small_net()
    net.build((6, 6, 2), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 6, 6, 2))
    plain = net.forward(x).copy()
    np.testing.assert_array_equal(net.forward(x), plain)
    p0, p0_again, p1 = (net.forward(x, mc_pass=i).copy() for i in (0, 0, 1))
    np.testing.assert_array_equal(p0, p0_again)
    assert not np.allclose(p0, p1)
    assert not np.allclose(p0, plain)
    assert all(layer.step == 0 for layer in net.layers if layer.stochastic)


def test_pickle_round_trip_rebinds_kernels():
    import pickle
    net = small_net()
    net.build((6, 6, 2), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 6, 6, 2))
    clone = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(clone.forward(x), net.forward(x))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_conv_filters_validation_names_value(bad):
    with pytest.raises(ValueError, match=f"filters={bad!r}"):
        Conv2D(bad)


def test_activation_validation_names_value():
    with pytest.raises(ValueError, match="activation='gelu'"):
        Activation("gelu")


NUMPY_FIT = """
import sys
import numpy as np
from minicnn import CNNClassifier, CNNRegressor
rng = np.random.default_rng(0)
X = rng.random((24, 12, 12, 1), dtype=np.float32)
for est, y in [(CNNClassifier, np.arange(24) % 3), (CNNRegressor, rng.random(24))]:
    for optimizer in ("adam", "sgd"):
        model = est(layers=("conv4", "maxpool", "conv8", "avgpool", "dense8"), batch_norm=True, backend="numpy",
                    optimizer=optimizer, max_iter=2, batch_size=8, random_state=0).fit(X, y)
        model.predict(X)
        model.predict_uncertainty(X[:2], mc_samples=2)
compiled = sorted(name for name in sys.modules
                  if name.startswith(("minicnn.backend._", "numba")) or name.endswith("_kernels"))
print(",".join(compiled))
"""


def test_a_numpy_backend_fit_imports_no_compiled_kernel():
    """Loss, optimizer and layers of a ``backend="numpy"`` fit all run the NumPy kernels (OpenMP control aside)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", NUMPY_FIT], capture_output=True, text=True, check=True).stdout
    assert set(out.split()[-1].split(",")) <= {"minicnn.backend._openmp"}, out


@pytest.mark.parametrize("loss_name", ["softmax_cross_entropy", "mean_squared_error"])
def test_train_step_runs_the_loss_and_optimizer_on_the_network_kernels(loss_name):
    from minicnn import losses
    from minicnn.backend import get_backend
    from minicnn.training import train_step

    calls = []
    real = get_backend("numpy")
    spy = type(real)(**{**vars(real), "name": "spy"})
    for kernel in ("softmax_xent", "adam_update"):
        def wrapped(*args, _kernel=getattr(real, kernel), _name=kernel):
            calls.append(_name)
            return _kernel(*args)
        setattr(spy, kernel, wrapped)
    net = small_net(backend=spy, dtype=np.float32)
    net.build((6, 6, 2), rng=np.random.default_rng(0))
    assert net.kernels is spy
    x = np.random.default_rng(1).standard_normal((4, 6, 6, 2)).astype(np.float32)
    y = np.array([0, 1, 2, 0]) if loss_name == "softmax_cross_entropy" else np.zeros((4, 3), np.float32)
    train_step(net, getattr(losses, loss_name), Adam(1e-3), x, y)
    assert "adam_update" in calls
    assert ("softmax_xent" in calls) == (loss_name == "softmax_cross_entropy")


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_conv_workspaces_have_one_slot_per_thread_the_kernels_run(n_threads):
    """Per-thread workspaces are sized by the OpenMP team of ``n_threads``, not by the machine's CPU count."""
    from minicnn.backend import get_backend
    from minicnn.threads import thread_limits

    try:
        kernels = get_backend("cython")
    except ImportError as exc:
        pytest.skip(f"Cython kernels not built: {exc}")
    net = Sequential([Conv2D(8, 3, activation="relu"), Conv2D(8, 3), Flatten(), Dense(2)], backend=kernels,
                     dtype=np.float32)
    net.build((10, 10, 8), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((8, 10, 10, 8)).astype(np.float32)
    with thread_limits(n_threads):
        assert kernels.team_size() == n_threads
        net.backward(np.ones_like(net.forward(x, training=True)))
    slotted = {name: view.shape for layer in net.layers[:2] for name, view in layer._views.items()
               if name in ("winograd", "winograd_dx", "dcol")}
    assert slotted and all(shape[0] == n_threads for shape in slotted.values()), slotted
    assert get_backend("numpy").team_size() == 1
