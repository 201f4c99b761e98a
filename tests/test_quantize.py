"""Reduced-precision inference (minicnn.quantize): every model kind through int8 and bf16, compiled kernels equal
to the NumPy twins end to end, the accuracy figures the API reports, and the refusals (bad parameters, a CPU
without the instructions, a forced lower level) through every entry point."""

import numpy as np
import pytest

from minicnn import CNNClassifier, CNNRegressor, load_predictor
from minicnn.backend import isa, lowp
from minicnn.onnx import export_onnx_qdq
from minicnn.quantize import PRECISIONS, QuantizedPredictor, quantize

N_DIGITS = 600

#: Model kinds: plain conv + pool + dense; strided "valid" convs with a non-fused activation (leaky_relu runs
#: after the epilogue); BatchNorm folded into conv and dense; a residual block and a separable conv (float32
#: composites between int8 layers); global average pooling; a dilated conv with average pooling.
KINDS = {
    "conv-pool-dense": dict(layers=("conv8", "maxpool", "conv16", "dense32")),
    "strided-leaky": dict(layers=("conv8s2", "conv16", "dense16"), padding="valid", activation="leaky_relu",
                          dropout="none"),
    "batchnorm": dict(layers=("conv8", "maxpool", "dense16"), batch_norm=True, dropout="none"),
    "residual-separable": dict(layers=("conv8", "res8", "sep8", "gap"), dropout="none"),
    "dilated-avgpool-tanh": dict(layers=("conv8d2", "avgpool", "dense16"), activation="tanh", dropout="none"),
}


@pytest.fixture(scope="module", params=sorted(KINDS))
def fitted(request, digits):
    X, y = digits
    return CNNClassifier(**KINDS[request.param], max_iter=4, random_state=0).fit(X[:400], y[:400])


@pytest.fixture(scope="module")
def regressor(digits):
    X, y = digits
    return CNNRegressor(layers=("conv8", "maxpool", "dense16"), max_iter=3, random_state=0).fit(
        X[:400], np.stack([y, y % 3], axis=1)[:400].astype(float))


def _available(precision):
    return not lowp.missing(precision) and _built(precision)


def _built(precision):
    try:
        lowp.kernels(precision)
    except lowp.UnsupportedPrecisionError:
        return False
    return True


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_model_kind_agrees_with_float32_and_reports_it(fitted, digits, precision):
    X, y = digits
    q = quantize(fitted, X[:300], precision=precision, X_validation=X[400:], y_validation=y[400:],
                 backend="numpy")
    assert isinstance(q, QuantizedPredictor) and q.precision == precision
    f32_proba = fitted.predict_proba(X[400:])
    proba = q.predict_proba(X[400:])
    assert proba.shape == f32_proba.shape and np.allclose(proba.sum(axis=1), 1.0)
    agreement = float((proba.argmax(1) == f32_proba.argmax(1)).mean())
    assert q.agreement_ == agreement >= 0.95
    assert q.max_abs_difference_ == pytest.approx(float(np.abs(proba - f32_proba).max()))
    assert q.max_abs_difference_ < (0.25 if precision == "int8" else 0.05)
    assert q.float32_accuracy_ == pytest.approx(float((fitted.predict(X[400:]) == y[400:]).mean()))
    assert q.accuracy_ == pytest.approx(float((q.predict(X[400:]) == y[400:]).mean()))
    assert abs(q.accuracy_ - q.float32_accuracy_) <= 0.05
    kinds = dict(q.layer_precisions_)
    assert kinds.get("Conv2D") == precision and kinds.get("Dense") == precision


@pytest.mark.parametrize("precision", PRECISIONS)
def test_compiled_path_equals_the_numpy_twins_end_to_end(fitted, digits, precision):
    """int8: bit for bit (integer products, the same float epilogue); bf16 within the summation tolerance."""
    if not _available(precision):
        pytest.skip(f"this CPU lacks {lowp.missing(precision)}")
    X, _ = digits
    slow = quantize(fitted, X[:300], precision=precision, backend="numpy")
    fast = quantize(fitted, X[:300], precision=precision, backend="auto")
    got, want = fast.predict_proba(X), slow.predict_proba(X)
    if precision == "int8":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_predictions_do_not_depend_on_threads_or_batch_split(fitted, digits, precision):
    if not _available(precision):
        pytest.skip(f"this CPU lacks {lowp.missing(precision)}")
    X, _ = digits
    q = quantize(fitted, X[:300], precision=precision)
    runs = []
    for threads in (1, 2):
        q.n_threads = threads
        runs.append(q.predict_proba(X))
    np.testing.assert_array_equal(runs[0], runs[1])
    one_by_one = np.concatenate([q.predict_proba(X[i:i + 1]) for i in range(0, 40)])
    if precision == "int8":   # each row is computed alone whatever the batch: the same bits
        np.testing.assert_array_equal(one_by_one, runs[0][:40])


def test_regressor_predicts_its_targets_at_reduced_precision(regressor, digits):
    X, _ = digits
    q = quantize(regressor, X[:300], backend="numpy", X_validation=X[400:])
    got, want = q.predict(X[400:]), regressor.predict(X[400:])
    assert got.shape == want.shape == (len(X) - 400, 2)
    assert q.agreement_ is None and q.max_abs_difference_ == pytest.approx(float(np.abs(got - want).max()))
    assert q.max_abs_difference_ < 0.05 * max(1.0, float(np.abs(want).max()))
    with pytest.raises(AttributeError, match="classifier"):
        q.predict_proba(X[:2])


def test_percentile_calibration_narrows_the_ranges_max_takes(digits):
    from minicnn._lowp_steps import activation_range

    values = [np.linspace(-1.0, 1.0, 100_001, dtype=np.float32), np.array([50.0], np.float32)]
    assert activation_range(values, "max", 99.99) == (-1.0, 50.0)
    low, high = activation_range(values, "percentile", 99.9)
    assert -1.0 < low < -0.99 and 0.99 < high < 1.0
    assert activation_range([np.array([0.2, 0.7], np.float32)], "max", 99.99) == (0.0, pytest.approx(0.7))


def test_predictor_loaded_at_reduced_precision(digits, tmp_path):
    X, y = digits
    clf = CNNClassifier(layers=("conv8", "maxpool", "dense16"), max_iter=3, random_state=0).fit(X[:400], y[:400])
    path = tmp_path / "clf.npz"
    clf.save(path)
    for precision in PRECISIONS:
        if not _available(precision):
            with pytest.raises(lowp.UnsupportedPrecisionError):
                load_predictor(path, precision=precision, X_calibration=X[:200])
            continue
        q = load_predictor(path, precision=precision, X_calibration=X[:200])
        assert isinstance(q, QuantizedPredictor) and q.precision == precision
        want = quantize(clf, X[:200], precision=precision).predict_proba(X)
        np.testing.assert_array_equal(q.predict_proba(X), want)
    q = load_predictor(path, backend="numpy", precision="int8", X_calibration=X[:200])
    np.testing.assert_array_equal(q.predict(X), quantize(clf, X[:200], backend="numpy").predict(X))
    with pytest.raises(ValueError, match="precision must be one of .* received precision='fp16'"):
        load_predictor(path, precision="fp16")
    with pytest.raises(ValueError, match="needs calibration data"):
        load_predictor(path, backend="numpy", precision="int8")


# ----------------------------------------------------------------------------- refusals
@pytest.fixture
def model(digits):
    X, y = digits
    return CNNClassifier(layers=("conv4", "maxpool"), max_iter=1, random_state=0).fit(X[:100], y[:100])


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("entry", ["quantize", "load_predictor"])
def test_a_cpu_without_the_feature_is_refused_naming_it(precision, entry, monkeypatch, model, digits, tmp_path):
    X, _ = digits
    family = lowp.MODULES[precision]
    _, _, required, name = isa.FEATURE_MODULES[family]
    full = set(isa.LEVEL_TABLE["avx512"][1]) | {f for m in isa.FEATURE_MODULES.values() for f in m[2]}
    monkeypatch.setattr(isa, "cpu_features", lambda: full - set(required))
    path = tmp_path / "m.npz"
    model.save(path)
    call = {"quantize": lambda: quantize(model, X[:50], precision=precision),
            "load_predictor": lambda: load_predictor(path, precision=precision, X_calibration=X[:50])}[entry]
    with pytest.raises(lowp.UnsupportedPrecisionError, match=f"precision='{precision}' needs the CPU feature {name}"):
        call()
    assert isinstance(lowp.UnsupportedPrecisionError("x"), RuntimeError)
    assert quantize(model, X[:50], precision=precision, backend="numpy").predict(X[:5]).shape == (5,)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_cpu_without_the_level_is_refused_naming_what_is_missing(precision, monkeypatch, model, digits):
    X, _ = digits
    monkeypatch.setattr(isa, "cpu_features", lambda: set(isa.LEVEL_TABLE["avx2"][1]))
    with pytest.raises(lowp.UnsupportedPrecisionError, match="missing .*AVX512F"):
        quantize(model, X[:50], precision=precision)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_forced_lower_level_is_refused(precision, monkeypatch, model, digits):
    if lowp.missing(precision):
        pytest.skip("the CPU refusal comes first here")
    X, _ = digits
    monkeypatch.setenv(isa.ENV_VAR, "avx2")
    with pytest.raises(lowp.UnsupportedPrecisionError, match=f"{isa.ENV_VAR}='avx2' forces a lower"):
        quantize(model, X[:50], precision=precision)


@pytest.mark.parametrize("kwargs, message", [
    (dict(precision="fp16"), "precision must be one of ('int8', 'bf16'); received precision='fp16'"),
    (dict(precision="float32"), "received precision='float32'"),
    (dict(calibration="entropy"), "calibration must be one of ('max', 'percentile'); received calibration='entropy'"),
    (dict(percentile=50), "percentile must be a number in (50, 100]; received percentile=50"),
    (dict(percentile=100.5), "received percentile=100.5"),
    (dict(percentile=True), "received percentile=True"),
    (dict(backend="numba"), "backend must be one of ('auto', 'cython', 'numpy'); received backend='numba'"),
])
def test_bad_parameters_are_refused_naming_them(kwargs, message, model, digits):
    X, _ = digits
    with pytest.raises(ValueError) as info:
        quantize(model, X[:50], **kwargs)
    assert message in str(info.value)


def test_missing_or_empty_calibration_and_unfitted_models_are_refused(model, digits):
    X, _ = digits
    with pytest.raises(ValueError, match="precision='int8' needs calibration data"):
        quantize(model, None, backend="numpy")
    with pytest.raises(ValueError, match="no samples|0 sample"):
        quantize(model, X[:0], backend="numpy")
    with pytest.raises(ValueError, match="must be a fitted CNNClassifier .* received CNNClassifier"):
        quantize(CNNClassifier(), X[:10], backend="numpy")
    with pytest.raises(ValueError, match="received dict"):
        quantize({}, X[:10], backend="numpy")
    assert quantize(model, None, precision="bf16", backend="numpy").agreement_ is None


def test_a_layer_whose_int32_sums_could_overflow_stays_float32(monkeypatch, model, digits):
    """``K * 255 * 127`` must fit int32: a wider layer keeps its float32 forward (and says so)."""
    import minicnn.quantize as quantize_module

    X, _ = digits
    monkeypatch.setattr(quantize_module, "INT8_MAX_K", 50)   # the conv (K = 9) fits, the dense (K = 64) not
    q = quantize(model, X[:50], backend="numpy")
    assert dict(q.layer_precisions_) == {"Conv2D": "int8", "MaxPool2D": "int8", "Dropout": "float32",
                                         "Flatten": "float32", "Dense": "float32"}
    monkeypatch.setattr(quantize_module, "INT8_MAX_K", 8)
    q = quantize(model, X[:50], backend="numpy")
    assert [p for _, p in q.layer_precisions_] == ["float32"] * len(q.layer_precisions_)
    np.testing.assert_allclose(q.predict_proba(X[:20]), model.predict_proba(X[:20]), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- ONNX export (QDQ)
def test_int8_model_exports_as_qdq_onnx_that_onnx_runtime_runs_alike(digits, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    X, y = digits
    clf = CNNClassifier(layers=("conv8", "maxpool", "conv16", "dense32"), padding="same", max_iter=4,
                        random_state=0).fit(X[:400], y[:400])
    q = quantize(clf, X[:300], backend="numpy")
    path = export_onnx_qdq(q, tmp_path / "q.onnx")
    graph = onnx.load(path).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QuantizeLinear") == 4 and ops.count("DequantizeLinear") == 8   # 2 convs, 2 dense
    weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1]
    assert len(weights) == 4
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {"X": X})
    mine = q.predict_proba(X)
    assert float((proba.argmax(1) == mine.argmax(1)).mean()) >= 0.99
    assert float(np.abs(proba - mine).max()) < 0.05   # rounding of x / scale (ONNX) vs x * (1 / scale) only
    assert float(np.abs(proba - clf.predict_proba(X)).max()) > 0   # the graph is quantized, not the float one


@pytest.mark.parametrize("kind", ["bf16", "batchnorm"])
def test_qdq_export_refuses_what_it_cannot_write(kind, digits, tmp_path):
    pytest.importorskip("onnx")
    X, y = digits
    if kind == "bf16":
        q = quantize(CNNClassifier(layers=("conv4", "maxpool"), max_iter=1, random_state=0).fit(X[:100], y[:100]),
                     None, precision="bf16", backend="numpy")
    else:
        q = quantize(CNNClassifier(layers=("conv4", "maxpool"), batch_norm=True, dropout="none", max_iter=1,
                                   random_state=0).fit(X[:100], y[:100]), X[:50], backend="numpy")
    with pytest.raises(ValueError, match="export_onnx_qdq writes int8 models"):
        export_onnx_qdq(q, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


def test_qdq_export_refuses_an_opset_without_per_channel_dequantize(model, digits, tmp_path):
    pytest.importorskip("onnx")
    X, _ = digits
    q = quantize(model, X[:50], backend="numpy")
    for opset in (11, None, "13"):
        with pytest.raises(ValueError, match="opset"):
            export_onnx_qdq(q, tmp_path / "q.onnx", opset=opset)


def test_percentile_calibration_end_to_end_takes_narrower_ranges(model, digits):
    from minicnn._lowp_steps import Product

    X, _ = digits
    scales = {}
    for calibration in ("max", "percentile"):
        q = quantize(model, X[:300], calibration=calibration, percentile=99.0, backend="numpy", X_validation=X[300:])
        assert q.agreement_ >= 0.9
        scales[calibration] = [s.state["x_scale"] for s in q._steps if isinstance(s, Product)]
    assert all(p <= m for p, m in zip(scales["percentile"], scales["max"]))
    assert any(p < m for p, m in zip(scales["percentile"], scales["max"]))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("change", ["refit-new-classes", "refit-new-shape", "partial_fit", "set_params"])
def test_a_quantized_copy_does_not_follow_later_changes_of_its_source(change, precision, digits):
    X, y = digits
    backend = "auto" if _available(precision) else "numpy"
    source = CNNClassifier(layers=("conv4", "res4", "maxpool", "dense8"), dropout="none", max_iter=1,
                           random_state=0, backend=backend).fit(X[:100], y[:100])
    q = quantize(source, X[:64], precision=precision)
    before, classes = q.predict_proba(X[:20]), source.classes_.copy()
    if change == "refit-new-classes":
        source.fit(X[:100], np.array(list("abcd"))[y[:100] % 4])
    elif change == "refit-new-shape":
        source.fit(np.pad(X[:100], ((0, 0), (4, 4), (4, 4), (0, 0))), y[:100])
    elif change == "partial_fit":
        source.partial_fit(X[100:200], y[100:200])
    else:
        source.set_params(layers=("conv8", "dense8"))
    np.testing.assert_array_equal(q.predict_proba(X[:20]), before)
    np.testing.assert_array_equal(q.predict(X[:20]), classes[before.argmax(axis=1)])


@pytest.mark.parametrize("kwargs, message", [
    (lambda X, y: dict(X_validation=X[:20], y_validation=y[:5]), r"one target per sample of X_validation \(20\)"),
    (lambda X, y: dict(y_validation=y[:20]), "y_validation needs X_validation"),
    (lambda X, y: dict(X_validation=X[:20], y_validation=y[0]), r"received shape \(\)"),
])
def test_validation_labels_are_checked_against_their_inputs(kwargs, message, model, digits):
    X, y = digits
    with pytest.raises(ValueError, match=message):
        quantize(model, X[:50], backend="numpy", **kwargs(X, y))


def test_a_regressors_validation_labels_are_refused_not_ignored(regressor, digits):
    X, y = digits
    with pytest.raises(ValueError, match="regressor"):
        quantize(regressor, X[:50], backend="numpy", X_validation=X[:20], y_validation=y[:20])


def test_load_predictor_takes_the_calibration_data_and_method_by_quantizes_names(model, digits, tmp_path):
    X, _ = digits
    path = tmp_path / "m.npz"
    model.save(path)
    for kwargs, message in ((dict(X_calibration=X[:50]), "X_calibration is only used with precision"),
                            (dict(calibration="percentile"), "calibration='percentile' is only used")):
        with pytest.raises(ValueError, match=message):
            load_predictor(path, **kwargs)
    q = load_predictor(path, backend="numpy", precision="int8", X_calibration=X[:50], calibration="percentile")
    ref = quantize(model, X[:50], backend="numpy", calibration="percentile")
    np.testing.assert_array_equal(q.predict_proba(X[:30]), ref.predict_proba(X[:30]))


@pytest.mark.parametrize("what", ["estimator", "predictor"])
def test_qdq_export_of_a_float32_model_names_what_it_needs(what, model, tmp_path):
    source = model if what == "estimator" else (model.save(tmp_path / "m.npz"), load_predictor(tmp_path / "m.npz"))[1]
    with pytest.raises(TypeError, match="needs the int8 model minicnn.quantize.quantize returns"):
        export_onnx_qdq(source, tmp_path / "x.onnx")


def test_calibration_data_that_leaves_a_layer_input_at_zero_warns(model, digits):
    X, _ = digits
    with pytest.warns(UserWarning, match="0 everywhere"):
        q = quantize(model, np.zeros_like(X[:5]), backend="numpy")
    assert q.agreement_ == 1.0   # measured on the calibration data itself: why the warning is needed
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantize(model, X[:50], backend="numpy")


#: Which int8 products write their output as the next one's uint8 input (``->``), per model kind: every pair with
#: only a flatten or an inverted dropout between them, unless an activation runs after the epilogue (leaky_relu,
#: tanh) or a float32 layer lies between (average pooling, composite blocks).
CHAINS = {
    "conv-pool-dense": ["Conv2D->", "Conv2D->", "Dense->", "Dense"],
    "strided-leaky": ["Conv2D", "Conv2D", "Flatten", "Dense", "Dense"],
    "batchnorm": ["Conv2D->", "Dense->", "Dense"],
    "residual-separable": ["Conv2D", "Residual", "Chain", "GlobalAvgPool2D", "Dense"],
    "dilated-avgpool-tanh": ["Conv2D", "AvgPool2D", "Flatten", "Dense", "Dense"],
}


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_chained_int8_products_give_the_bits_of_the_float32_handoff(fitted, digits, backend, monkeypatch):
    """A product quantizing its output in its epilogue as the next product's input (no float32 activations
    between them) predicts the same bits as the float32 output quantized by the next product, on the twins
    and on the compiled kernels."""
    if backend == "auto" and not _available("int8"):
        pytest.skip(f"this CPU lacks {lowp.missing('int8')}")
    from minicnn import quantize as quantize_module
    from minicnn._lowp_steps import Product

    X, _ = digits
    q = quantize(fitted, X[:300], backend=backend)
    layout = [type(s).__name__ if not isinstance(s, Product) else type(s.layer).__name__ + "->" * (s.next is not None)
              for s in q._steps]
    assert layout == CHAINS[next(k for k, v in KINDS.items() if v["layers"] == fitted.layers)]
    for name, precision in q.layer_precisions_:   # a layer a chain leaves out passes uint8 data on
        if name in ("Flatten", "Dropout"):
            assert precision == ("float32" if name in layout else "int8"), q.layer_precisions_
    monkeypatch.setattr(quantize_module, "chain_products", lambda steps: steps)
    unchained = quantize(fitted, X[:300], backend=backend)
    assert not any(getattr(s, "next", None) for s in unchained._steps)
    np.testing.assert_array_equal(q.predict_proba(X), unchained.predict_proba(X))


def test_only_layers_that_pass_their_input_on_at_inference_are_skipped_by_a_chain():
    from minicnn._lowp_steps import transparent
    from minicnn.layers import Dropout, Flatten, MaxPool2D, SpatialDropout2D

    assert transparent(Flatten()) and transparent(Dropout(0.5)) and transparent(SpatialDropout2D(0.3))
    assert transparent(Dropout(0.0, scaling="test_time"))
    assert not transparent(Dropout(0.5, scaling="test_time")) and not transparent(MaxPool2D())


@pytest.mark.parametrize("backend", ["numpy", "auto"])
def test_one_channel_convs_reading_kernel_rows_as_groups_give_the_same_bits(fitted, digits, backend, monkeypatch):
    """An int8 conv over one channel reads each kernel row (up to 4 taps, no column dilation) as one 4-byte group
    of the pixel and its next 3: the same integer sums as the channel padded to 4, so the same predictions."""
    if backend == "auto" and not _available("int8"):
        pytest.skip(f"this CPU lacks {lowp.missing('int8')}")
    from minicnn import _lowp_steps

    X, _ = digits
    q = quantize(fitted, X[:300], backend=backend)
    first = next(s for s in q._steps if isinstance(s, _lowp_steps.Product))
    assert first.rows4 == (fitted.layers[0] != "conv8d2")   # every first conv of a digits model has one channel
    monkeypatch.setattr(_lowp_steps, "rows4", lambda layer, codec: False)
    padded = quantize(fitted, X[:300], backend=backend)
    assert not any(getattr(s, "rows4", False) for s in padded._steps)
    np.testing.assert_array_equal(q.predict_proba(X), padded.predict_proba(X))
