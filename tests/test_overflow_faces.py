"""A model whose weights are finite but huge never predicts silently: every face raises, naming the layer.

The rule: the cheap finite check on each prediction's output decides (``minicnn._predict._finite``); only when
it fails is the network run layer by layer on the samples that overflowed (``minicnn._overflow.locate``), and
the ValueError names the first layer whose activations became non-finite and the largest weight there. Faces:
the estimators' predict / predict_proba / predict_uncertainty, load_predictor's, ``minicnn predict`` (plain,
--proba, --mc-samples), ``minicnn evaluate``, and ``quantize`` (which measures the float32 model first).
"""

import warnings

import numpy as np
import pytest

from helpers import run_cli

#: The NumPy kernels' own floating-point warnings on the overflow each test provokes (the error is asserted).
pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]


def _fit(kind):
    from minicnn import CNNClassifier, CNNRegressor
    from minicnn.datasets import load_digits_images

    X, y = load_digits_images()
    X, y = X[:120], y[:120]
    estimator = CNNClassifier if kind == "classifier" else CNNRegressor
    target = y if kind == "classifier" else y.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator(layers=("conv4", "maxpool", "dense16"), dropout="after_each_layer", max_iter=1,
                         random_state=0, backend="numpy").fit(X, target), X, target


def _blow_up(model, index):
    """Weights of top-level layer ``index`` set to 3e38 (finite): its output overflows on images of ones."""
    layer = model.network_.layers[index]
    layer.params["w"][...] = 3e38
    layer.params["b"][...] = 0.0
    return f"layer {index}, {type(layer).__name__}("


@pytest.fixture(scope="module", params=["classifier", "regressor"])
def huge(request, tmp_path_factory):
    model, X, y = _fit(request.param)
    names = [type(layer).__name__ for layer in model.network_.layers]
    needle = _blow_up(model, names.index("Conv2D"))
    path = tmp_path_factory.mktemp("huge") / "m.npz"
    model.save(path)
    np.savez(path.with_name("d.npz"), X=np.ones_like(X[:20]), y=y[:20])
    return request.param, model, path, needle


def _faces(kind):
    faces = ["predict", "predict_uncertainty", "transform"] + (["predict_proba"] if kind == "classifier" else [])
    return faces


@pytest.mark.parametrize("face", ["estimator", "load_predictor numpy",
                                  "load_predictor numba", "load_predictor cython"])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_uncertainty", "transform"])
def test_every_python_face_names_the_layer(huge, method, face):
    from minicnn import load_predictor

    kind, model, path, needle = huge
    if method not in _faces(kind):
        pytest.skip("a regressor has no predict_proba")
    face = model if face == "estimator" else load_predictor(path, backend=face.split()[1])
    X = np.ones((5, 8, 8, 1), dtype=np.float32)
    kwargs = {"mc_samples": 3} if method == "predict_uncertainty" else {}
    with pytest.raises(ValueError, match="overflowed float32") as info:
        getattr(face, method)(X, **kwargs)
    text = str(info.value)
    assert needle in text and "largest |weight| is 3e+38" in text and "refit it" in text, text


@pytest.mark.parametrize("argv", [["predict"], ["predict", "--proba"], ["predict", "--mc-samples", "2"],
                                  ["evaluate"]])
def test_every_command_names_the_layer(huge, argv):
    kind, model, path, needle = huge
    if "--proba" in argv and kind != "classifier":
        pytest.skip("a regressor has no probabilities")
    data = path.with_name("d.npz")
    tail = [data] if argv[0] == "predict" else ["--test-data", data]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, out, err = run_cli(*argv, "--model", path, *tail)
    assert code == 1 and err.startswith(f"minicnn {argv[0]}: error: ") and needle in err, err
    assert "Traceback" not in err and out == "", (out, err)


def test_quantizing_a_model_that_overflows_names_the_layer(huge):
    from minicnn.quantize import quantize

    kind, model, path, needle = huge
    with pytest.raises(ValueError, match="overflowed float32") as info:
        quantize(model, np.ones((16, 8, 8, 1), dtype=np.float32), precision="int8", backend="numpy")
    assert needle in str(info.value)


def test_large_inputs_to_a_sound_model_still_advise_scaling_x():
    """Weights in a fitted model's range (1e6), inputs at the input check's limit: the output layer overflows;
    the layer is named and the advice is about X."""
    from minicnn._overflow import WEIGHT_LIMIT

    model, X, _ = _fit("classifier")
    for layer in model.network_.layers:
        for values in layer.params.values():
            values[...] = WEIGHT_LIMIT
    with pytest.raises(ValueError, match="overflowed float32") as info:
        model.predict(np.full((2, 8, 8, 1), 1.8e19, dtype=np.float32))
    text = str(info.value)
    assert "became non-finite at layer" in text and "scale X" in text and "refit" not in text, text


def test_a_quantized_predictor_whose_forward_overflows_names_the_layer():
    from minicnn._overflow import WEIGHT_LIMIT
    from minicnn.quantize import quantize

    model, X, _ = _fit("classifier")
    for layer in model.network_.layers:
        for values in layer.params.values():
            values[...] = WEIGHT_LIMIT
    quantized = quantize(model, X[:50], precision="bf16", backend="numpy")   # calibration data: no overflow
    with pytest.raises(ValueError, match="became non-finite at layer"):
        quantized.predict_proba(np.full((2, 8, 8, 1), 1.8e19, dtype=np.float32))
