"""transform(): embeddings of a layer on every face (estimators, Predictor, ONNX), names, bad layers, MC means."""

import warnings

import numpy as np
import pytest

from minicnn import CNNClassifier, CNNRegressor, load_predictor
from minicnn.embedding import layer_names

N_DIGITS = 120
SMALL = dict(layers=("conv4", "maxpool", "dense8"), dropout="after_each_layer", dropout_rate=0.2, max_iter=2,
             backend="numpy", random_state=0)


def _fitted(cls, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning of the 2-epoch fits
        return cls(**{**SMALL, **kw}).fit(X, y)


@pytest.fixture(scope="module", params=["classifier", "regressor"])
def model(request, digits):
    X, y = digits
    if request.param == "classifier":
        return _fitted(CNNClassifier, X, y), X
    return _fitted(CNNRegressor, X, y.astype(np.float32) / 9), X


@pytest.fixture(scope="module")
def predictor(model, tmp_path_factory):
    est, _ = model
    path = tmp_path_factory.mktemp("t") / "m.npz"
    est.save(path)
    return load_predictor(path)


def test_every_layer_by_index_and_name_is_2d_with_the_layer_width(model, predictor):
    est, X = model
    names = layer_names(est.network_)
    assert len(names) == len(set(names)) == len(est.network_.layers)
    for index, (name, layer) in enumerate(zip(names, est.network_.layers)):
        width = int(np.prod(layer.output_shape))
        by_index = est.transform(X, layer=index)
        assert by_index.shape == (len(X), width) and by_index.dtype == np.float64
        assert np.array_equal(est.transform(X, layer=name), by_index)
        assert np.array_equal(est.transform(X, layer=index - len(names)), by_index)
        assert np.array_equal(predictor.transform(X, layer=name), by_index)
    # channels-last flattening of a map: the values of the layer's forward pass
    maps = est.network_.layers[0].forward(X, False).reshape(len(X), -1)
    assert np.allclose(est.transform(X, layer=0), maps)


def test_default_is_the_penultimate_layer_and_the_last_gives_the_raw_outputs(model, predictor):
    est, X = model
    assert np.array_equal(est.transform(X), est.transform(X, layer=len(est.network_.layers) - 2))
    assert np.array_equal(predictor.transform(X), est.transform(X))
    names = est.get_feature_names_out()
    assert list(names) == [f"{type(est).__name__.lower()}{i}" for i in range(est.transform(X[:1]).shape[1])]
    assert list(predictor.get_feature_names_out()) == list(names)
    raw = est.transform(X, layer=-1)
    if isinstance(est, CNNClassifier):
        z = np.exp(raw - raw.max(axis=1, keepdims=True))
        assert np.allclose(z / z.sum(axis=1, keepdims=True), est.predict_proba(X), atol=1e-6)
    else:
        assert np.allclose(raw.ravel(), est.predict(X), atol=1e-6)


def test_mc_averaged_embeddings(model, predictor):
    est, X = model
    plain = est.transform(X)
    mc = est.transform(X, mc_samples=8)
    assert mc.shape == plain.shape and not np.array_equal(mc, plain)   # dropout before the penultimate layer
    assert np.array_equal(est.transform(X, mc_samples=8), mc)          # int random_state: same masks
    assert np.array_equal(predictor.transform(X, mc_samples=8), mc)
    first = est.network_.layers[0].forward(X, False).reshape(len(X), -1)   # before any dropout: MC changes nothing
    with pytest.warns(UserWarning, match="without dropout"):   # none before layer 0: the user is told
        assert np.allclose(est.transform(X, layer=0, mc_samples=3), first)


@pytest.mark.parametrize("layer", [99, -99, "dense_7", "Dense", True, 1.0, ""])
def test_missing_layer_is_a_clear_error_naming_the_parameter(model, predictor, layer):
    est, X = model
    for face in (est, predictor):
        with pytest.raises(ValueError, match=r"Expected layer to be None .* Received: layer="):
            face.transform(X[:2], layer=layer)


@pytest.mark.parametrize("mc_samples", [0, -1, 1.5, True])
def test_bad_mc_samples(model, mc_samples):
    est, X = model
    with pytest.raises(ValueError, match="mc_samples"):
        est.transform(X[:2], mc_samples=mc_samples)


def test_mc_on_a_model_without_dropout_warns(digits):
    X, y = digits
    est = _fitted(CNNClassifier, X, y, dropout="none")
    for call in (lambda: est.transform(X[:4], mc_samples=2), lambda: est.predict_proba(X[:4], mc_samples=2),
                 lambda: est.predict_uncertainty(X[:4], mc_samples=2)):
        with pytest.warns(UserWarning, match="without dropout"):
            call()


def test_unfitted_transform_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        CNNClassifier().transform(np.zeros((2, 8, 8, 1), np.float32))
    with pytest.raises(NotFittedError):
        CNNClassifier().get_feature_names_out()


def test_onnx_embedding_output_matches_transform(model, predictor, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from minicnn import export_onnx

    est, X = model
    for face in (est, predictor):
        path = export_onnx(face, tmp_path / "m.onnx", embedding=True)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        assert names[-1] == "embedding"
        outputs = dict(zip(names, session.run(None, {"X": X})))
        assert outputs["embedding"].shape == (len(X), est.transform(X[:1]).shape[1])
        assert np.allclose(outputs["embedding"], est.transform(X), atol=1e-5)


def test_pipeline_and_grid_search_on_cnn_features(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X, y = digits
    pipe = make_pipeline(CNNClassifier(**{**SMALL, "max_iter": 3}), LogisticRegression(max_iter=200))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0]}, cv=2).fit(X.reshape(len(X), -1), y)
    assert search.predict(X.reshape(len(X), -1)).shape == (len(X),)
    assert len(search.best_estimator_[:-1].get_feature_names_out()) == 8


def test_cli_export_embedding(model, predictor, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from helpers import run_cli

    est, X = model
    path = tmp_path / "m.npz"
    est.save(path)
    code, _, err = run_cli("export", "--model", str(path), "--out", str(tmp_path / "m.onnx"), "--embedding")
    assert code == 0 and "embedding" in err, err
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    embedding = session.run(["embedding"], {"X": X})[0]
    assert np.allclose(embedding, est.transform(X), atol=1e-5)
