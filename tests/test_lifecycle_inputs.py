"""Probable input mistakes are caught alike by the estimators and the Predictor; warnings point at the caller's
line; Monte-Carlo dropout draws fresh masks per call without a seed and repeats them with one."""

import warnings

import numpy as np
import pytest

import minicnn
from minicnn import CNNClassifier, CNNRegressor, training

from helpers import random_images

ESTIMATORS = (CNNClassifier, CNNRegressor)
TINY = dict(layers=("conv4", "maxpool", "dense8"), max_iter=1, batch_size=16, random_state=0, backend="numpy")


def targets(cls, n):
    return np.arange(n) % 3 if cls is CNNClassifier else np.linspace(0, 1, n)


def recorded(call):
    """Run ``call()`` and return the warnings it emitted (every one recorded)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


def assert_warned_here(caught, match):
    hits = [w for w in caught if match in str(w.message)]
    assert hits, f"no warning matching {match!r} among {[str(w.message) for w in caught]}"
    for w in hits:
        assert w.filename == __file__, f"{match!r} attributed to {w.filename}:{w.lineno}"


# ------------------------------------------------------------------------- 7. shapes and layouts
FITTED = [  # (per-sample shape of X in fit, data_format)
    ((8, 8, 1), "channels_last"), ((8, 8, 3), "channels_last"), ((3, 8, 8), "channels_first"),
    ((8, 8), "channels_last"), ((1, 8, 8), "channels_first"),
]


@pytest.fixture(scope="module", params=range(len(FITTED) * 2), ids=lambda i: f"{FITTED[i // 2]}-{i % 2}")
def fitted(request, tmp_path_factory):
    shape, data_format = FITTED[request.param // 2]
    cls = ESTIMATORS[request.param % 2]
    X = random_images(24, shape=shape)
    est = cls(**TINY, data_format=data_format).fit(X, targets(cls, len(X)))
    path = tmp_path_factory.mktemp("fitted") / "m.npz"
    est.save(path)
    return est, minicnn.load_predictor(path), X


def same_error(models, X, match):
    """Every model raises the same ValueError message for ``X``, matching ``match``; returns it."""
    messages = []
    for model in models:
        with pytest.raises(ValueError, match=match) as info:
            model.predict(X)
        messages.append(str(info.value))
    assert len(set(messages)) == 1, messages
    return messages[0]


def test_one_image_without_the_batch_axis_suggests_x_none(fitted):
    est, predictor, X = fitted
    if X.ndim == 4 and X.shape[1] == 1 and est.data_format == "channels_first":
        # X[0] of shape (1, h, w) is also a valid 3-D batch holding that one image: it predicts it
        np.testing.assert_array_equal(est.predict(X[0]), est.predict(X[:1]))
        np.testing.assert_array_equal(predictor.predict(X[0]), est.predict(X[:1]))
        return
    same_error((est, predictor), X[0], r"one image of the fitted shape without the batch axis: pass X\[None\]")
    np.testing.assert_array_equal(est.predict(X[0][None]), est.predict(X[:1]))
    np.testing.assert_array_equal(predictor.predict(X[0][None]), est.predict(X[:1]))


def test_the_other_layout_suggests_the_transpose(fitted):
    est, predictor, X = fitted
    if X.ndim != 4 or X.shape[1] == X.shape[3]:
        pytest.skip("needs 4-D images whose layouts differ")
    other = X.transpose(0, 2, 3, 1) if est.data_format == "channels_first" else X.transpose(0, 3, 1, 2)
    same_error((est, predictor), np.ascontiguousarray(other), r"transpose it to")


@pytest.mark.parametrize("bad", ["zero-channels", "zero-height", "zero-width"])
def test_zero_sized_image_dimensions_are_a_value_error_naming_x(fitted, bad):
    est, predictor, X = fitted
    axis = {"zero-channels": -1, "zero-height": 1, "zero-width": 2}[bad]
    empty = np.take(X, [], axis=axis) if X.ndim == 4 or axis != -1 else X[:, :, :0]
    same_error((est, predictor), empty, r"X holds images with a zero-sized dimension")
    cls = type(est)
    with pytest.raises(ValueError, match=r"X holds images with a zero-sized dimension"):
        cls(**TINY).fit(empty, targets(cls, len(X)))


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("shape, data_format, warns", [
    ((1, 8, 8), "channels_last", True), ((3, 12, 12), "channels_last", True), ((4, 9, 7), "channels_last", True),
    ((8, 8, 1), "channels_last", False), ((8, 8, 3), "channels_last", False), ((3, 3, 16), "channels_last", False),
    ((8, 8, 1), "channels_first", True), ((12, 12, 3), "channels_first", True),
    ((1, 8, 8), "channels_first", False), ((3, 8, 8), "channels_first", False),
])
def test_layouts_that_look_like_the_other_data_format_warn(cls, shape, data_format, warns):
    X = random_images(24, shape=shape)
    params = {**TINY, "data_format": data_format, "padding": "same"}
    caught = recorded(lambda: cls(**params).fit(X, targets(cls, len(X))))
    if warns:
        assert_warned_here(caught, "it looks channels-")
    else:
        assert not [w for w in caught if "looks channels-" in str(w.message)]


GRAY = "look like unscaled 8-bit gray levels"


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32,
                                   np.float64])
@pytest.mark.parametrize("top, rounded, warns", [(255, True, True), (16, True, True), (2, True, True),
                                                 (1, True, False), (255, False, False), (0.9, False, False)])
@pytest.mark.parametrize("flat", [False, True])
def test_unscaled_gray_levels_warn_whatever_the_dtype(cls, dtype, top, rounded, warns, flat):
    """Integer values in 0..255 (max > 1) warn for every dtype; scaled, non-integer or 0/1 values do not."""
    values = random_images(24) * top
    X = np.round(values) if rounded else values
    if np.issubdtype(dtype, np.integer) and (not rounded or top > np.iinfo(dtype).max):
        pytest.skip("not representable")
    X = X.astype(dtype)
    if flat:
        X = X.reshape(len(X), -1)
    caught = recorded(lambda: cls(**TINY).fit(X, targets(cls, len(X))))
    if warns:
        assert_warned_here(caught, GRAY)
    else:
        assert not [w for w in caught if GRAY in str(w.message)]


@pytest.mark.parametrize("container", ["list", "dataframe", "negative", "above_255"])
def test_unscaled_gray_levels_warn_from_every_container_only_in_0_255(container):
    X = np.round(random_images(24, shape=(8, 8)) * 255).astype(np.int64).reshape(-1, 64)
    if container == "list":
        X = X.tolist()
    elif container == "dataframe":
        pd = pytest.importorskip("pandas")
        X = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    elif container == "negative":
        X = X - 128
    else:
        X = X * 16
    caught = recorded(lambda: CNNClassifier(**TINY).fit(X, targets(CNNClassifier, len(X))))
    if container in ("list", "dataframe"):
        assert_warned_here(caught, GRAY)
    else:
        assert not [w for w in caught if GRAY in str(w.message)]


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("width, input_shape, warns", [(60, None, True), (7, None, True), (64, None, False),
                                                       (60, (6, 10), False), (49, None, False)])
def test_a_flat_width_that_is_no_square_warns_unless_input_shape_is_given(cls, width, input_shape, warns):
    X = random_images(24, shape=(width,))
    params = {**TINY, "input_shape": input_shape, "padding": "same"}
    caught = recorded(lambda: cls(**params).fit(X, targets(cls, len(X))))
    if warns:
        assert_warned_here(caught, "not a perfect square")
    else:
        assert not [w for w in caught if "perfect square" in str(w.message)]


@pytest.mark.parametrize("labels", [["a", 1, "b", 2], [1.5, "x", 2.5, "y"], ["cat", "dog", 3, "cat"]])
def test_labels_mixing_strings_and_numbers_are_a_value_error_naming_y(labels):
    X = random_images(24)
    y = np.array(labels * 6, dtype=object)
    with pytest.raises(ValueError, match=r"y mixes string labels with labels of other types"):
        CNNClassifier(**TINY).fit(X, y)
    with pytest.raises(ValueError, match=r"classes mixes string labels"):
        CNNClassifier(**TINY).partial_fit(X, np.array(["a"] * 24, dtype=object), classes=np.array(labels, object))
    CNNClassifier(**TINY).fit(X, y.astype(str))           # the suggested fix works


# ------------------------------------------------------------------------- 8. warnings point at the caller
def test_training_warnings_point_at_the_callers_line(monkeypatch):
    X = random_images(48)
    y = targets(CNNClassifier, len(X))
    lint = dict(TINY, layers=("conv4", "conv4", "dense8"), batch_norm=True, dropout="after_each_layer")
    assert_warned_here(recorded(lambda: CNNClassifier(**lint).fit(X, y)), "BatchNorm")
    est = CNNClassifier(**{**TINY, "max_iter": 3}).fit(X, y)
    real, calls = training.train_step, [0]

    def step(*args):
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(training, "train_step", step)
    assert_warned_here(recorded(lambda: est.set_params(warm_start=True).fit(X, y)), "Training interrupted")
    calls[0] = 3                  # the second batch of the next epoch: nothing of this call completes
    assert_warned_here(recorded(lambda: est.partial_fit(X, y)), "Training interrupted")


def test_a_column_vector_y_warning_points_at_the_callers_line():
    from sklearn.exceptions import DataConversionWarning

    X = random_images(24)
    y = targets(CNNClassifier, 24)[:, None]
    caught = recorded(lambda: CNNClassifier(**TINY).fit(X, y))
    assert_warned_here(caught, "A column-vector y was passed")
    assert any(issubclass(w.category, DataConversionWarning) for w in caught)


def test_feature_name_warnings_point_at_the_callers_line(tmp_path):
    pd = pytest.importorskip("pandas")
    X = random_images(24).reshape(24, -1)
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)])
    est = CNNClassifier(**TINY).fit(frame, targets(CNNClassifier, 24))
    est.save(tmp_path / "m.npz")
    for model in (est, minicnn.load_predictor(tmp_path / "m.npz")):
        assert_warned_here(recorded(lambda: model.predict(X)), "feature names")


def test_the_random_state_docstring_promises_only_what_holds():
    for cls in ESTIMATORS:
        doc = " ".join(cls.__doc__.split())
        assert "the same model on every backend" not in doc
        assert "float rounding" in doc and "identical" in doc


# ------------------------------------------------------------------------- 9. Monte-Carlo dropout and seeds
def mc_draws(model, X, k=6):
    if getattr(model, "estimator", type(model).__name__) == "CNNClassifier":
        return [model.predict_proba(X, mc_samples=1) for _ in range(k)]
    return [model.predict(X, mc_samples=1) for _ in range(k)]


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("random_state", [None, 0, 12345])
def test_mc_dropout_draws_fresh_masks_without_a_seed_and_repeats_them_with_one(cls, random_state, tmp_path):
    X = random_images(16)
    est = cls(**{**TINY, "random_state": random_state, "dropout": "last:2", "dropout_rate": 0.5})
    est.fit(X, targets(cls, len(X)))
    est.save(tmp_path / "m.npz")
    for model in (est, minicnn.load(tmp_path / "m.npz"), minicnn.load_predictor(tmp_path / "m.npz")):
        draws = mc_draws(model, X)
        distinct = {d.tobytes() for d in draws}
        if random_state is None:
            assert len(distinct) == len(draws)              # every call is a new sample: a spread
            assert np.std(np.stack(draws), axis=0).max() > 0
        else:
            assert len(distinct) == 1                       # deterministic for a fixed seed
        mean, std = est.predict_uncertainty(X, mc_samples=4)
        again, std_again = est.predict_uncertainty(X, mc_samples=4)
        assert (np.array_equal(mean, again) and np.array_equal(std, std_again)) == (random_state is not None)


def _routes():
    """Ways users call fit: directly and through scikit-learn's helpers (which run it through joblib)."""
    from sklearn.model_selection import GridSearchCV, cross_val_predict, cross_val_score, cross_validate
    from sklearn.pipeline import make_pipeline
    from joblib import Parallel, delayed

    return {
        "fit": lambda est, X, y: est.fit(X, y),
        "pipeline": lambda est, X, y: make_pipeline(est).fit(X, y),
        "cross_val_score": lambda est, X, y: cross_val_score(est, X, y, cv=2),
        "cross_validate": lambda est, X, y: cross_validate(est, X, y, cv=2),
        "cross_val_predict": lambda est, X, y: cross_val_predict(est, X, y, cv=2),
        "grid_search": lambda est, X, y: GridSearchCV(est, {"max_iter": [1]}, cv=2).fit(X, y),
        "joblib_parallel": lambda est, X, y: Parallel(n_jobs=1)(delayed(est.fit)(X, y) for _ in range(1)),
    }


@pytest.mark.parametrize("route", sorted(_routes()))
@pytest.mark.parametrize("kind", ["gray_levels", "placement_lint"])
def test_fit_warnings_point_at_the_callers_line_through_every_route(route, kind):
    X = random_images(48)
    y = targets(CNNClassifier, len(X))
    if kind == "gray_levels":
        est, X, match = CNNClassifier(**TINY), np.round(X * 255).astype(np.uint8), GRAY
    else:
        est, match = CNNClassifier(**dict(TINY, layers=("conv4", "conv4", "dense8"), batch_norm=True,
                                          dropout="after_each_layer")), "BatchNorm"
    call = _routes()[route]
    assert_warned_here(recorded(lambda: call(est, X, y)), match)


@pytest.mark.parametrize("ndim", [0, 1, 5, 6])
@pytest.mark.parametrize("stage", ["fit", "predict"])
def test_x_with_the_wrong_number_of_axes_gets_a_hint_for_its_shape(ndim, stage):
    """1-D X is told about reshape(1, -1); 5-D and more about merging or dropping axes, never reshape(1, -1)."""
    shape = {0: (), 1: (64,), 5: (2, 12, 8, 8, 1), 6: (1, 2, 12, 8, 8, 1)}[ndim]
    X = np.random.default_rng(0).random(shape).astype(np.float32)
    est = CNNClassifier(**TINY)
    if stage == "predict":
        est.fit(random_images(24), targets(CNNClassifier, 24))
        call = lambda: est.predict(X)   # noqa: E731
    else:
        call = lambda: est.fit(X, targets(CNNClassifier, len(X) if ndim else 1))   # noqa: E731
    with pytest.raises(ValueError, match="2 to 4 dimensions") as info:
        call()
    message = str(info.value)
    assert ("reshape(1, -1)" in message) == (ndim < 2), message
    if ndim > 4:
        assert f"X has {ndim} axes" in message
