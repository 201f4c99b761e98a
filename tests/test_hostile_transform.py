"""transform() and Monte-Carlo passes on tree networks (blocks with layers inside), every face, every value kind.

The layer numbering of ``transform`` is the one of ``summary()`` (network layer indices, counting the layers inside
blocks); a layer inside a block is refused by name, never silently swapped for another layer; Monte-Carlo passes
sample the dropout inside a block; the warning about a model without dropout looks inside blocks too.
"""

import warnings

import numpy as np
import pytest

from minicnn import CNNClassifier, CNNRegressor, load_predictor
from minicnn.embedding import layer_names

N_DIGITS = 60
#: Networks with blocks: a residual block (dropout inside it, between its convolutions), a separable conv, a
#: depthwise conv and global max pooling; and a plain one.
NETWORKS = {
    "tree": dict(layers=("conv4", "res4", "sep8", "dw3", "gmp", "dense8"), dropout="after_each_layer"),
    "inner-only": dict(layers=("res4", "gap"), dropout=[0]),
    "plain": dict(layers=("conv4", "maxpool", "dense8"), dropout="after_each_layer"),
}


def _fit(cls, X, y, **kw):
    params = dict(max_iter=1, backend="numpy", random_state=0, n_threads=1, dropout_rate=0.3)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning of the 1-epoch fits
        return cls(**params).fit(X, y)


@pytest.fixture(scope="module", params=[(c, n) for c in ("classifier", "regressor") for n in NETWORKS])
def faces(request, digits, tmp_path_factory):
    """(estimator, predictor, X) of one estimator class and network."""
    kind, net = request.param
    X, y = digits
    est = (_fit(CNNClassifier, X, y, **NETWORKS[net]) if kind == "classifier"
           else _fit(CNNRegressor, X, y.astype(np.float32) / 9, **NETWORKS[net]))
    path = tmp_path_factory.mktemp("m") / "m.npz"
    est.save(path)
    return est, load_predictor(path), X[:7]


def _manual(network, X, stop):
    """Outputs of the top-level layers up to and including ``stop`` (an object), run by hand."""
    x = X
    for layer in network.layers:
        x = layer.forward(x, False)
        if layer is stop:
            return x.reshape(len(X), -1).astype(np.float64)
    raise AssertionError("stop layer is not top-level")


def test_every_network_layer_index_and_name_is_the_summary_row_or_a_clear_refusal(faces):
    est, pred, X = faces
    network = est.network_
    rows = network.descendants()
    names = layer_names(network)
    assert len(names) == len(rows) == len(set(names))
    summary = est.summary()
    top = {id(layer) for layer in network.layers}
    for index, layer in enumerate(rows):
        # the summary row with this number is this layer
        assert any(line.split(maxsplit=1) == [str(index), line.split(maxsplit=1)[-1]]
                   and line.split(maxsplit=1)[-1].startswith(f"{type(layer).__name__}({layer.describe()})")
                   for line in summary.splitlines() if line.strip())
        for face in (est, pred):
            for value in (index, index - len(rows), names[index], np.int64(index), np.int32(index - len(rows))):
                if id(layer) in top:
                    np.testing.assert_array_equal(face.transform(X, layer=value), _manual(network, X, layer))
                else:
                    with pytest.raises(ValueError, match=r"inside the block.*Received: layer=") as info:
                        face.transform(X, layer=value)
                    assert repr(value) in str(info.value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 1.0, np.float64(0), "nope", "Dense", b"dense",
                                   [0], (0,), 10**6, -10**6])
def test_layer_values_of_every_wrong_kind_are_refused_naming_layer(faces, value):
    est, pred, X = faces
    for face in (est, pred):
        with pytest.raises(ValueError, match=r"layer=") as info:
            face.transform(X, layer=value)
        assert repr(value) in str(info.value)


def test_default_is_the_penultimate_top_level_layer_and_matches_feature_names(faces):
    est, pred, X = faces
    penultimate = est.network_.layers[-2]
    for face in (est, pred):
        out = face.transform(X)
        np.testing.assert_array_equal(out, _manual(est.network_, X, penultimate))
        assert out.shape == (len(X), len(face.get_feature_names_out()))
        np.testing.assert_allclose(face.transform(X[:1]), out[:1], rtol=1e-5, atol=1e-6)   # one sample (BLAS order)


def _has_dropout(layers):
    return any(inner.stochastic for layer in layers for inner in layer.walk())


def test_mc_passes_sample_the_dropout_inside_blocks_and_warn_only_without_any(faces):
    est, pred, X = faces
    network = est.network_
    for position, layer in enumerate(network.layers):
        index = network.descendants().index(layer)
        for face in (est, pred):
            plain = face.transform(X, layer=index)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                mc = face.transform(X, layer=index, mc_samples=4)
            warned = [w for w in caught if "without dropout" in str(w.message)]
            if _has_dropout(network.layers[:position + 1]):
                assert not warned
                assert not np.allclose(plain, mc), f"layer {index}: the MC mean equals the plain embedding"
            else:
                assert len(warned) == 1
                np.testing.assert_allclose(mc, plain, rtol=1e-6, atol=1e-6)
    for face in (est, pred):
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # the network has dropout (inside a block, maybe): no warning
            mean, std = face.predict_uncertainty(X, mc_samples=4)
        assert std.max() > 0


def _containers():
    """The DataFrame libraries installed (neither is a dependency of minicnn)."""
    import importlib.util

    return [name for name in ("pandas", "polars") if importlib.util.find_spec(name) is not None]


@pytest.mark.parametrize("how", ["set_output", "set_config"])
@pytest.mark.parametrize("container", _containers())
def test_set_output_dataframes_label_the_default_layer_and_refuse_another(digits, container, how):
    """A DataFrame output is labelled by get_feature_names_out (the default layer): another layer is refused."""
    import sklearn

    X, y = digits
    for kind, est in (("classifier", _fit(CNNClassifier, X, y, **NETWORKS["tree"])),
                      ("regressor", _fit(CNNRegressor, X, y.astype(np.float32), **NETWORKS["tree"]))):
        context = sklearn.config_context(transform_output=container) if how == "set_config" else _nothing()
        if how == "set_output":
            est.set_output(transform=container)
        with context:
            frame = est.transform(X[:4])
            assert list(frame.columns) == list(est.get_feature_names_out()), kind
            default = est.network_.descendants().index(est.network_.layers[-2])
            assert est.transform(X[:4], layer=default).shape == frame.shape
            for layer in (0, "conv2d", -1):
                with pytest.raises(ValueError, match=r"set_output.*Received: layer="):
                    est.transform(X[:4], layer=layer)


def _nothing():
    import contextlib

    return contextlib.nullcontext()
