"""ONNX export: ONNX Runtime gives the outputs of predict / predict_proba for every layer kind and input layout."""

import re
import subprocess
import sys

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from minicnn import CNNClassifier, CNNRegressor, export_onnx, load_predictor  # noqa: E402
from minicnn.layers import (Activation, AvgPool2D, BatchNorm, Chain, Conv2D, Dense, DepthwiseConv2D,  # noqa: E402
                            Dropout, Flatten, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, Residual,
                            SpatialDropout2D)
from minicnn.network import Sequential  # noqa: E402
from minicnn.onnx import DEFAULT_OPSET, INSTALL_HINT, to_onnx_model  # noqa: E402
from minicnn.onnx._graph import ACTIVATION_OPS, COMPOSITE_TRANSLATORS, TRANSLATORS  # noqa: E402

TOL = 1e-5
#: Placement lint of fits with batch_norm and dropout (irrelevant to the export)
pytestmark = pytest.mark.filterwarnings("ignore:Dropout after:UserWarning")
FORMATS = ("channels_last", "channels_first")


N_DIGITS = 96   # samples in the digits fixture (conftest.py)


@pytest.fixture(scope="module")
def digits(digits):
    """The shared digits fixture with each image as a flat row of 64 features (scikit-learn's layout)."""
    X, y = digits
    return X.reshape(len(X), -1), y


def images(X, data_format, channels=1):
    """Flat digits as 4-D images in ``data_format`` (channels > 1: shifted copies)."""
    maps = np.stack([np.roll(X.reshape(-1, 8, 8), k, axis=2) for k in range(channels)], axis=-1)
    return np.ascontiguousarray(maps if data_format == "channels_last" else maps.transpose(0, 3, 1, 2))


def session(model, **kwargs):
    proto = to_onnx_model(model, **kwargs)
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def assert_same_outputs(model, X, **kwargs):
    """ORT on ``X`` (batch of one, and all rows) equals predict / predict_proba; returns the ORT outputs."""
    sess = session(model, **kwargs)
    outputs = None
    for batch in (X[:1], X):
        outputs = sess.run(None, {"X": batch})
        if model.__class__.__name__ == "CNNRegressor" or getattr(model, "estimator", "") == "CNNRegressor":
            (variable,) = outputs
            expected = model.predict(batch)
            assert variable.shape == expected.shape and variable.dtype == np.float32
            np.testing.assert_allclose(variable, expected, rtol=TOL, atol=TOL)
        else:
            label, proba = outputs
            expected = model.predict(batch)
            assert label.shape == expected.shape
            assert label.tolist() == expected.tolist()
            assert proba.dtype == np.float32
            np.testing.assert_allclose(proba, model.predict_proba(batch), rtol=0, atol=TOL)
    return outputs


def randomize_batch_norm(model, rng):
    """Give every BatchNorm distinct statistics and affine parameters (one epoch leaves them near 0 / 1)."""
    for layer in model.network_.walk():
        if isinstance(layer, BatchNorm):
            C = layer.running_mean.shape[0]
            layer.running_mean[...] = rng.normal(0, 0.5, C)
            layer.running_var[...] = rng.uniform(0.2, 3.0, C)
            layer.params["gamma"][...] = rng.uniform(0.5, 2.0, C)
            layer.params["beta"][...] = rng.normal(0, 0.5, C)


# --------------------------------------------------------------------------- estimator parameters
#: Estimator settings covering every graph-changing parameter (layer tokens, padding, pooling, batch norm,
#: dropout kind and scaling); the activation sweep is separate.
CASES = {
    "conv_pool_dense": dict(layers=("conv4", "maxpool", "dense8")),
    "same_even_kernel": dict(layers=("conv3x2", "maxpool", "conv4x4", "avgpool"), padding="same", pool_size=3),
    "avgpool_valid_3": dict(layers=("conv4", "avgpool", "dense6"), pool_size=3),
    "gap": dict(layers=("conv5", "conv4", "gap")),
    "batch_norm": dict(layers=("conv4", "maxpool", "dense8"), batch_norm=True),
    "dropout_test_time": dict(layers=("conv4", "maxpool", "dense8"), dropout="after_each_layer",
                              dropout_rate=0.3, dropout_scaling="test_time"),
    "spatial_test_time": dict(layers=("conv4", "conv4", "maxpool"), dropout="after_each_layer",
                              dropout_kind="spatial", dropout_rate=0.25, dropout_scaling="test_time"),
    "dropout_inverted": dict(layers=("conv4", "maxpool", "dense8"), dropout="after_each_layer", dropout_rate=0.4),
}


def fit(cls, X, y, data_format, **params):
    if X.ndim < 4:
        shape = (8, 8)
    else:
        shape = (8, 8, X.shape[-1]) if data_format == "channels_last" else (X.shape[1], 8, 8)
    params = {"max_iter": 2, "random_state": 0, "data_format": data_format, "input_shape": shape,
              "activation": "leaky_relu", **params}
    with warnings.catch_warnings():   # two epochs on random targets: the export's parity is tested, not the fit
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(**params).fit(X, y)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_estimator_cases_classifier_and_regressor(digits, case, data_format, rng):
    X, y = digits
    X4 = images(X, data_format, channels=2)
    for cls, target in ((CNNClassifier, y), (CNNRegressor, np.stack([y, y % 3], axis=1).astype(float))):
        model = fit(cls, X4, target, data_format, **CASES[case])
        randomize_batch_norm(model, rng)
        assert_same_outputs(model, X4)


@pytest.mark.parametrize("activation", sorted(ACTIVATION_OPS))
def test_every_activation(digits, activation, rng):
    X, y = digits
    X4 = images(X, "channels_last")
    model = fit(CNNClassifier, X4, y, "channels_last", layers=("conv4", "maxpool", "dense8"), activation=activation,
                batch_norm=activation == "sigmoid")   # sigmoid also after a BatchNorm (a standalone Activation)
    randomize_batch_norm(model, rng)
    assert_same_outputs(model, X4)


@pytest.mark.parametrize("data_format", FORMATS)
def test_every_input_rank(digits, data_format):
    """Flat (n, 64) rows, (n, 8, 8) images and 4-D images: each rank exports and agrees with predict."""
    X, y = digits
    X4 = images(X, data_format)
    clf = fit(CNNClassifier, X4, y, data_format, layers=("conv4", "maxpool"))
    reg = fit(CNNRegressor, X4, y.astype(float), data_format, layers=("conv4", "maxpool"))
    for ndim, Xn in ((2, X), (3, X.reshape(-1, 8, 8)), (4, X4), (None, X4)):
        for model in (clf, reg):
            sess = session(model, input_ndim=ndim)
            assert len(sess.get_inputs()[0].shape) == Xn.ndim
            assert_same_outputs(model, Xn, input_ndim=ndim)


def test_flat_rows_in_channels_first_order(digits):
    """2-D rows of a multi-channel model are flattened in data_format order, as fit reads them."""
    X, y = digits
    for data_format in FORMATS:
        X4 = images(X, data_format, channels=3)
        clf = fit(CNNClassifier, X4, y, data_format, layers=("conv4", "maxpool"))
        assert_same_outputs(clf, X4.reshape(len(X4), -1), input_ndim=2)
        with pytest.raises(ValueError, match="input_ndim=3"):
            to_onnx_model(clf, input_ndim=3)


# --------------------------------------------------------------------------- every layer setting
#: Layer stacks with settings the estimator's parameters do not reach (strides, dilation, int and asymmetric
#: padding, pool strides, no bias, standalone activations, the Winograd conv + 2x2 max-pool fusion).
STACKS = {
    "conv_stride2_same": lambda: [Conv2D(3, 3, strides=2, padding="same"), MaxPool2D(2, padding="same")],
    "conv_dilated_int_pad": lambda: [Conv2D(3, (3, 2), strides=(1, 2), padding=(1, 0), dilation=(2, 1),
                                            activation="tanh")],
    "conv_dilated_same": lambda: [Conv2D(4, 3, padding="same", dilation=2, use_bias=False)],
    "maxpool_same_negative": lambda: [Conv2D(3, 2, padding="same"), MaxPool2D(3, strides=2, padding="same")],
    "maxpool_int_pad": lambda: [Conv2D(3, 3), MaxPool2D(3, strides=1, padding=1)],
    "avgpool_same_strided": lambda: [Conv2D(3, 2), AvgPool2D(3, strides=2, padding="same")],
    "avgpool_rect_pad": lambda: [Conv2D(3, 3, padding="same"), AvgPool2D((3, 2), strides=(2, 1), padding=(1, 1))],
    "gap_bn_act": lambda: [Conv2D(4, 3, use_bias=False), BatchNorm(), Activation("leaky_relu", alpha=0.2),
                           GlobalAvgPool2D(), Dense(5, use_bias=False), BatchNorm(), Activation("sigmoid")],
    "dropouts": lambda: [Conv2D(4, 3, activation="relu"), SpatialDropout2D(0.3, scaling="test_time"), Flatten(),
                         Dropout(0.2, scaling="test_time"), Dense(6, activation="tanh"), Dropout(0.5)],
    "winograd_fused_pool": lambda: [Conv2D(8, 3, padding="same"), Conv2D(8, 3, padding="same"), MaxPool2D(2)],
    "residual_depthwise_gmp": lambda: [
        Residual(Chain([Conv2D(4, 3, strides=2, padding="same", use_bias=False), BatchNorm(), Activation("relu"),
                        Conv2D(4, 3, padding="same")]), Conv2D(4, 1, strides=2, padding="same"), activation="tanh"),
        Residual(Chain([DepthwiseConv2D(3, padding="same", activation="relu"), Conv2D(4, 1)])),
        DepthwiseConv2D((3, 2), strides=(2, 1), padding=(1, 0), dilation=(1, 2), use_bias=False),
        GlobalMaxPool2D()],
}


def with_network(model, layers, rng):
    """``model`` predicting through a network of ``layers`` (+ Flatten and the output Dense) with random weights."""
    if not any(isinstance(layer, Flatten) for layer in layers) and not isinstance(layers[-1], Dense):
        layers = [*layers, Flatten()]
    net = Sequential([*layers, Dense(model.n_outputs_)], backend=model.backend)
    net.build(model.input_shape_, rng=rng)
    for layer in net.walk():
        for value in layer.params.values():
            value[...] = rng.normal(0, 0.5, value.shape)
    model.network_ = net
    randomize_batch_norm(model, rng)
    return model


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_every_layer_setting(digits, stack, data_format, rng):
    X, y = digits
    X4 = images(X, data_format, channels=3)
    base = {"channels_last": (8, 8, 3), "channels_first": (3, 8, 8)}[data_format]
    clf = CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, random_state=0, data_format=data_format,
                        input_shape=base).fit(X4[:20], y[:20])
    assert_same_outputs(with_network(clf, STACKS[stack](), rng), X4)


def test_every_layer_class_has_a_translation_and_a_test():
    from minicnn import layers as layer_module

    classes = {getattr(layer_module, name) for name in layer_module.__all__} - {layer_module.Layer,
                                                                                layer_module.Composite}
    assert classes == set(TRANSLATORS) | set(COMPOSITE_TRANSLATORS)
    used = {type(layer) for make in STACKS.values() for top in make() for layer in top.walk()} | {Dense, Flatten}
    assert used == classes


# --------------------------------------------------------------------------- labels
@pytest.mark.parametrize("kind", ["int_gaps", "str", "object_str", "bool", "float", "uint8"])
def test_labels_keep_their_values_and_type(digits, kind):
    X, y = digits
    labels = {"int_gaps": y * 7 - 20, "str": np.array([f"digit {v}" for v in y]),
              "object_str": np.array([f"d{v}" for v in y], dtype=object), "bool": y > 4,
              "float": y * 2.0, "uint8": y.astype(np.uint8)}[kind]
    clf = fit(CNNClassifier, images(X, "channels_last"), labels, "channels_last", layers=("conv4", "maxpool"))
    label, _ = assert_same_outputs(clf, images(X, "channels_last"))
    expected = clf.predict(images(X, "channels_last"))
    assert label.dtype.kind == {"U": "O", "O": "O", "b": "b", "f": "f", "i": "i", "u": "i"}[expected.dtype.kind]


def test_predictor_exports_like_its_estimator(digits, tmp_path):
    X, y = digits
    X4 = images(X, "channels_first")
    for cls, target in ((CNNClassifier, np.array(["a", "b", "c"])[y % 3]), (CNNRegressor, y.astype(float))):
        est = fit(cls, X4, target, "channels_first", layers=("conv4", "maxpool", "dense8"), batch_norm=True)
        est.save(tmp_path / "m.npz")
        predictor = load_predictor(tmp_path / "m.npz")
        path = export_onnx(predictor, tmp_path / "m.onnx")
        assert path == str(tmp_path / "m.onnx")
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        ours = sess.run(None, {"X": X4})
        theirs = session(est).run(None, {"X": X4})
        for a, b in zip(ours, theirs):
            assert a.tolist() == b.tolist()
        assert_same_outputs(predictor, X4)


# --------------------------------------------------------------------------- the file itself
def test_graph_is_checked_typed_and_has_a_dynamic_batch(digits, tmp_path):
    X, y = digits
    clf = fit(CNNClassifier, images(X, "channels_last"), y, "channels_last", layers=("conv4", "maxpool"))
    proto = onnx.load(export_onnx(clf, tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", DEFAULT_OPSET)]
    (x,) = proto.graph.input
    assert x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = x.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [8, 8, 1]
    assert [o.name for o in proto.graph.output] == ["label", "probabilities"]


def test_every_opset_from_13_to_the_newest(digits):
    X, y = digits
    X4 = images(X, "channels_last")
    reg = fit(CNNRegressor, X4, y.astype(float), "channels_last", layers=("conv4", "avgpool", "dense8"),
              batch_norm=True, padding="same")
    for opset in range(13, onnx.defs.onnx_opset_version() + 1):
        assert to_onnx_model(reg, opset=opset).opset_import[0].version == opset
        assert_same_outputs(reg, X4, opset=opset)


def test_bad_arguments_are_named(digits):
    from sklearn.exceptions import NotFittedError

    X, y = digits
    clf = fit(CNNClassifier, X, y, "channels_last", layers=("conv4", "maxpool"))
    for bad in (12, 10_000, 15.0, "13", True):
        with pytest.raises(ValueError, match=re.escape(f"opset={bad!r}")):
            to_onnx_model(clf, opset=bad)
    for bad in (1, 5, "4", True):
        with pytest.raises(ValueError, match="input_ndim"):
            to_onnx_model(clf, input_ndim=bad)
    with pytest.raises(NotFittedError):
        to_onnx_model(CNNClassifier())
    with pytest.raises(TypeError, match="LogisticRegression"):
        from sklearn.linear_model import LogisticRegression

        to_onnx_model(LogisticRegression())


def test_missing_onnx_names_the_extra(monkeypatch, digits, tmp_path):
    X, y = digits
    clf = fit(CNNClassifier, X, y, "channels_last", layers=("conv4", "maxpool"))
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        export_onnx(clf, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# --------------------------------------------------------------------------- skl2onnx
@pytest.fixture(scope="module")
def skl2onnx():
    module = pytest.importorskip("skl2onnx")
    from minicnn.onnx import register_skl2onnx

    register_skl2onnx()
    register_skl2onnx()   # idempotent
    return module


@pytest.mark.parametrize("labels", ["int", "str"])
def test_pipeline_through_skl2onnx(digits, skl2onnx, labels):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = digits
    y = y if labels == "int" else np.array([f"c{v}" for v in y])
    pipe = Pipeline([("scale", StandardScaler()),
                     ("cnn", CNNClassifier(layers=("conv4", "maxpool", "dense8"), input_shape=(8, 8), max_iter=2,
                                           random_state=0, batch_norm=True))]).fit(X, y)
    expected_label, expected_proba = pipe.predict(X), pipe.predict_proba(X)
    for zipmap in (False, True, "columns"):
        onx = skl2onnx.to_onnx(pipe, X[:1], options={id(pipe[-1]): {"zipmap": zipmap}})
        sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
        label, *proba = sess.run(None, {"X": X})
        assert label.tolist() == expected_label.tolist()
        if zipmap is False:
            proba = proba[0]
        elif zipmap is True:
            proba = np.array([[row[c] for c in pipe.classes_] for row in proba[0]])
        else:
            proba = np.stack(proba, axis=1)
        np.testing.assert_allclose(proba, expected_proba, rtol=0, atol=TOL)
    onx = skl2onnx.to_onnx(pipe, X[:1], options={id(pipe[-1]): {"zipmap": False, "nocl": True}})
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"X": X})[0].tolist() == expected_proba.argmax(axis=1).tolist()


def test_regressor_pipeline_with_double_input(digits, skl2onnx):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X, y = digits
    pipe = make_pipeline(MinMaxScaler(), CNNRegressor(layers=("conv4", "maxpool"), input_shape=(8, 8), max_iter=2,
                                                      random_state=0)).fit(X, y.astype(float))
    X64 = X.astype(np.float64)
    onx = skl2onnx.to_onnx(pipe, X64[:1])
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    (variable,) = sess.run(None, {"X": X64})
    np.testing.assert_allclose(variable, pipe.predict(X64), rtol=TOL, atol=TOL)


def test_skl2onnx_refuses_a_mismatched_input(digits, skl2onnx):
    from skl2onnx.common.data_types import FloatTensorType

    X, y = digits
    clf = CNNClassifier(layers=("conv4", "maxpool"), input_shape=(8, 8), max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"\(N, 64\)"):
        skl2onnx.to_onnx(clf, initial_types=[("X", FloatTensorType([None, 63]))])
    with pytest.raises(ValueError, match=r"\(N, 8, 8, 1\)"):
        skl2onnx.to_onnx(clf, initial_types=[("X", FloatTensorType([None, 8, 8, 2]))])
    X4 = X.reshape(-1, 8, 8, 1)   # an image-shaped input converts too
    onx = skl2onnx.to_onnx(clf, X4[:1], options={"zipmap": False})
    label, proba = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"X": X4})
    assert label.tolist() == clf.predict(X4).tolist()
    np.testing.assert_allclose(proba, clf.predict_proba(X4), atol=TOL)


def test_subclass_of_an_estimator_exports(digits):
    class MyClassifier(CNNClassifier):
        pass

    X, y = digits
    clf = fit(MyClassifier, X, y, "channels_last", layers=("conv4", "maxpool"))
    assert_same_outputs(clf, X, input_ndim=2)


# --------------------------------------------------------------------------- command line
def test_cli_export(digits, tmp_path, capsys):
    from minicnn.cli import main

    X, y = digits
    clf = fit(CNNClassifier, X, y, "channels_last", layers=("conv4", "maxpool"), input_shape=None)
    clf.save(tmp_path / "m.npz")
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(tmp_path / "m.npz"), "--out", str(out), "--input-ndim", "2"]) == 0
    label, proba = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"X": X})
    assert label.tolist() == clf.predict(X).tolist()
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=TOL)
    capsys.readouterr()
    cases = [(["--model", str(tmp_path / "none.npz"), "--out", str(out)], 1, "no such file"),
             (["--model", str(tmp_path / "m.npz"), "--out", str(tmp_path / "nope" / "m.onnx")], 1, "does not exist"),
             (["--model", str(tmp_path / "m.npz"), "--out", str(tmp_path)], 1, "is a folder"),
             (["--model", str(tmp_path / "m.npz"), "--out", str(out), "--opset", "7"], 1, "--opset 7"),
             (["--model", str(tmp_path / "m.npz"), "--out", str(out), "--opset", "x"], 2, "--opset"),
             (["--model", str(out), "--out", str(tmp_path / "n.onnx")], 1, "not a valid minicnn model file"),
             (["--model", str(tmp_path / "m.npz"), "--out", str(tmp_path / "m.npz")], 1, "the model file itself")]
    for args, code, message in cases:
        assert main(["export", *args]) == code
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_cli_export_without_onnx(digits, tmp_path, capsys, monkeypatch):
    from minicnn.cli import main

    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", "--model", str(tmp_path / "m.npz"), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert INSTALL_HINT in err and len(err.strip().splitlines()) == 1


def test_predict_only_path_imports_no_onnx(digits, tmp_path):
    X, y = digits
    fit(CNNClassifier, X, y, "channels_last", layers=("conv4", "maxpool")).save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", X[:5])
    model, inputs = str(tmp_path / "m.npz"), str(tmp_path / "x.npy")
    code = (f"import sys, numpy; from minicnn import load_predictor; from minicnn.cli import main; "
            f"load_predictor({model!r}).predict(numpy.load({inputs!r})); "
            f"assert main(['predict', '--model', {model!r}, {inputs!r}]) == 0; "
            f"print([m for m in ('onnx', 'onnxruntime', 'skl2onnx') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_what_cannot_be_exported_is_named(digits):
    from minicnn.layers import Layer
    from minicnn.onnx import ExportError

    X, y = digits
    clf = fit(CNNClassifier, X, y, "channels_last", layers=("conv4", "maxpool"))
    classes = clf.classes_
    clf.classes_ = np.array([1, "a", *range(2, len(classes))], dtype=object)
    with pytest.raises(ExportError, match="every label is a str"):
        to_onnx_model(clf)
    clf.classes_ = classes.astype(np.complex128)
    with pytest.raises(ExportError, match="complex128"):
        to_onnx_model(clf)
    clf.classes_ = classes

    class Custom(Layer):
        """A layer kind the export does not know."""

    clf.network_.layers.insert(1, Custom())
    with pytest.raises(ExportError, match="layer 1 \\(Custom\\)"):
        to_onnx_model(clf)


def test_export_onnx_is_a_lazy_package_export():
    import minicnn
    import minicnn.onnx

    assert minicnn.export_onnx is minicnn.onnx.export_onnx and "export_onnx" in minicnn.__all__


@pytest.mark.parametrize("kind", [int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint64])
def test_integer_arguments_take_every_integer_type_and_refuse_bools_and_floats(digits, kind):
    """opset and input_ndim: NumPy integers work as ints (as elsewhere); bools and floats are refused by name."""
    X, y = digits
    clf = fit(CNNClassifier, X, y, "channels_last", layers=("conv4", "maxpool"))
    proto = to_onnx_model(clf, opset=kind(13), input_ndim=kind(4))
    assert proto.opset_import[0].version == 13 and type(proto.opset_import[0].version) is int
    assert len(proto.graph.input[0].type.tensor_type.shape.dim) == 4
    for bad in (True, np.bool_(True), np.float64(13.0), 13.0):
        with pytest.raises(ValueError, match="opset="):
            to_onnx_model(clf, opset=bad)
    for bad in (True, np.bool_(True), 4.0, np.float32(4.0)):
        with pytest.raises(ValueError, match="input_ndim="):
            to_onnx_model(clf, input_ndim=bad)
