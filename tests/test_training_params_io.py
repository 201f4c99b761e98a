"""The training parameters of issue 14 (lr_schedule, augment, class_weight) in model files."""

import json

import numpy as np
import pytest

import minicnn
from minicnn import CNNClassifier
from minicnn.datasets import load_digits_images
from minicnn.io import ModelFileError
from minicnn.params import ADDED_PARAMS, DEFAULTS

SMALL = dict(layers=("conv4", "maxpool", "dense16"), padding="same", max_iter=1, backend="cython", random_state=0)


def rewrite_header(path, change):
    with np.load(path) as archive:
        members = {k: archive[k] for k in archive.files}
    header = json.loads(members["header"].tobytes())
    change(header)
    members["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **members)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:100], y[:100]


@pytest.mark.parametrize("class_weight", [None, "balanced", {0: 2.0, 3: 0.5}])
def test_new_parameters_round_trip(digits, tmp_path, class_weight):
    X, y = digits
    est = CNNClassifier(**SMALL, lr_schedule="cosine", augment=("crop2", "hflip"), class_weight=class_weight)
    est.fit(X, y)
    est.save(tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    assert loaded.get_params() == est.get_params()
    assert isinstance(loaded.augment, tuple) and type(loaded.class_weight) is type(class_weight)
    if isinstance(class_weight, dict):
        assert list(loaded.class_weight) == [0, 3]   # int keys stay ints
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    predictor = minicnn.load_predictor(tmp_path / "m.npz")
    np.testing.assert_array_equal(predictor.predict(X), est.predict(X))
    loaded.set_params(warm_start=True).fit(X, y)   # trains on with the loaded parameters
    assert loaded.n_iter_ == 2


def test_files_written_before_the_new_parameters_load_them_at_their_defaults(digits, tmp_path):
    X, y = digits
    est = CNNClassifier(**SMALL).fit(X, y)
    path = tmp_path / "old.npz"
    est.save(path)
    rewrite_header(path, lambda h: [h["params"].pop(name) for name in ADDED_PARAMS])
    loaded = minicnn.load(path)
    assert {name: getattr(loaded, name) for name in ADDED_PARAMS} == {name: DEFAULTS[name] for name in ADDED_PARAMS}
    np.testing.assert_array_equal(minicnn.load_predictor(path).predict(X), est.predict(X))


@pytest.mark.parametrize("name, value", [("lr_schedule", "linear"), ("augment", ["shift0"]),
                                         ("class_weight", {"items": [[0, -1.0]]}),
                                         ("class_weight", {"items": "nope"}), ("class_weight", {"a": 1})])
def test_bad_saved_values_are_refused(digits, tmp_path, name, value):
    X, y = digits
    path = tmp_path / "bad.npz"
    CNNClassifier(**SMALL).fit(X, y).save(path)
    rewrite_header(path, lambda h: h["params"].__setitem__(name, value))
    for load in (minicnn.load, minicnn.load_predictor):
        with pytest.raises(ModelFileError, match=name):
            load(path)
