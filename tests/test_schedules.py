"""Learning-rate schedules: factors, the rate each epoch trains with, continuation, the per-step Adam step size."""

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from minicnn import CNNClassifier, CNNRegressor, _estimator_base, training
from minicnn.backend import get_backend
from minicnn.datasets import load_digits_images
from minicnn.optim import Adam
from minicnn.schedules import LRSchedule, schedule_factor

from helpers import importable_backends


def test_fixed_schedules():
    assert [schedule_factor("constant", e, 5) for e in range(5)] == [1.0] * 5
    cosine = [schedule_factor("cosine", e, 10) for e in range(10)]
    assert cosine[0] == 1.0 and all(a > b > 0 for a, b in zip(cosine, cosine[1:]))
    assert cosine[5] == pytest.approx(0.5) and cosine[9] == pytest.approx(0.5 * (1 + np.cos(0.9 * np.pi)))
    assert [schedule_factor("step", e, 8) for e in range(8)] == [1.0] * 4 + [0.1] * 2 + [pytest.approx(0.01)] * 2
    assert schedule_factor("cosine", 10, 10) == 1.0   # a new cycle


def test_adaptive_divides_by_5_after_two_stalled_epochs():
    s = LRSchedule("adaptive", 100)
    factors = []
    for improved in (True, False, True, False, False, False, False, True):
        s.end_epoch(improved)
        factors.append(s.factor)
    assert factors == [1, 1, 1, 1, 0.2, 0.2, pytest.approx(0.04), pytest.approx(0.04)]


TRAIN_EPOCH = training.train_epoch


def rates_of_fit(monkeypatch, est, X, y, method="fit"):
    rates = []
    original = TRAIN_EPOCH

    def spy(network, loss_fn, optimizer, *args, **kwargs):
        rates.append(optimizer.learning_rate)
        return original(network, loss_fn, optimizer, *args, **kwargs)

    monkeypatch.setattr(_estimator_base, "train_epoch", spy)
    getattr(est, method)(X, y)
    return rates


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:160], y[:160]


SMALL = dict(layers=("conv4", "maxpool", "dense16"), padding="same", backend="cython", random_state=0,
             learning_rate=0.01, n_iter_no_change=100)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_each_epoch_trains_with_the_scheduled_rate(monkeypatch, digits, schedule, cls):
    X, y = digits
    est = cls(**SMALL, max_iter=4, lr_schedule=schedule)
    rates = rates_of_fit(monkeypatch, est, X, y)
    assert rates == pytest.approx([0.01 * schedule_factor(schedule, e, 4) for e in range(4)])
    # warm start: a new cycle; partial_fit: continues the cycle (restarting every max_iter epochs)
    est.set_params(warm_start=True)
    assert rates_of_fit(monkeypatch, est, X, y) == pytest.approx(rates)
    continued = [rates_of_fit(monkeypatch, est, X, y, "partial_fit")[0] for _ in range(5)]
    assert continued == pytest.approx(rates + rates[:1])


def test_adaptive_in_a_fit(monkeypatch, digits):
    X, y = digits
    est = CNNClassifier(**{**SMALL, "learning_rate": 1e-9}, max_iter=6, lr_schedule="adaptive", tol=10.0)
    rates = rates_of_fit(monkeypatch, est, X, y)   # only epoch 1 improves (on inf) by tol=10: divided after 3, 5
    assert rates == pytest.approx([1e-9, 1e-9, 1e-9, 2e-10, 2e-10, 4e-11], rel=1e-9, abs=0)
    # partial_fit keeps the reduced rate; changing lr_schedule starts the new schedule
    assert rates_of_fit(monkeypatch, est, X, y, "partial_fit") == pytest.approx([4e-11], rel=1e-9, abs=0)
    est.set_params(lr_schedule="constant")
    assert rates_of_fit(monkeypatch, est, X, y, "partial_fit") == pytest.approx([1e-9])


@pytest.mark.parametrize("bad", ["linear", "Cosine", None, 1, ("cosine",)])
def test_bad_schedule_is_an_error_naming_the_parameter(digits, bad):
    X, y = digits
    with pytest.raises(InvalidParameterError, match=r"'lr_schedule' parameter.*Got " + repr(bad).replace("(", r"\(")
                       .replace(")", r"\)")):
        CNNClassifier(lr_schedule=bad).fit(X, y)


@pytest.mark.parametrize("backend", importable_backends(("numpy", "numba", "cython")))
def test_fused_adam_takes_the_step_size_of_each_step(backend, rng):
    """Changing ``learning_rate`` between steps changes that step only; every backend gives the same bits."""
    start = rng.random(1000, dtype=np.float32)
    grads = [rng.random(1000, dtype=np.float32) for _ in range(3)]
    results = []
    for kernels in (get_backend("numpy"), get_backend(backend)):
        p, opt, moves = start.copy(), Adam(learning_rate=0.1, weight_decay=0.01), []
        for lr, g in zip((0.1, 0.001, 0.05), grads):
            opt.learning_rate = lr
            before = p.copy()
            opt.step([(p, g)], kernels=kernels)
            moves.append(np.abs(p - before).max())
        results.append((p, moves))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    moves = results[1][1]
    assert moves[1] < moves[0] / 20 and moves[2] > 10 * moves[1]   # step 2 used 0.001, step 3 0.05
