"""Opt-in reduced-precision inference: :func:`quantize` turns a fitted model into a :class:`QuantizedPredictor`.

``precision="int8"`` is post-training static quantization (Jacob et al. 2018, "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference"; the U8S8 scheme of ONNX Runtime's static
quantization): weights int8, symmetric, one scale per output channel; each conv / dense input uint8 with one
scale and zero point per tensor, calibrated on user data (``calibration="max"``: the observed range, ONNX
Runtime's MinMax calibrator; ``"percentile"``: the central ``percentile`` % of the values); the products run
exactly in int32 on AVX512-VNNI and are dequantized in float32, where the bias and activation are applied.
``precision="bf16"`` rounds weights and activations to bfloat16 and accumulates in float32 (AVX512-BF16).
Between two int8 layers (only a flatten or an inverted dropout between them) the activations stay uint8: the
first quantizes its outputs in its epilogue as the second's input, the same bits as the float32 hand-over.
Other pooling, and composite blocks, run in float32. Each precision runs only where the CPU has the
instructions and is refused elsewhere (:class:`minicnn.backend.lowp.UnsupportedPrecisionError`, naming the
missing feature); ``backend="numpy"`` runs the same arithmetic in NumPy on any CPU.

:func:`minicnn.onnx.export_onnx_qdq` writes an int8 model as an ONNX QDQ graph. The accuracy cost is measured
when quantizing: :attr:`QuantizedPredictor.agreement_` is the top-1 agreement
with the float32 model on the validation data (the calibration data if none is given); docs/PRECISION.md
has the figures on MNIST and Fashion-MNIST.
"""

import copy
import numbers
import warnings

import numpy as np

from ._lowp_steps import (BF16, INT8_MAX_K, Int8, Product, activation_range, chain_products, fusable_pool,
                          product_layer)
from ._predict import PREDICT_BATCH, _finite, as_float64, batched_outputs, softmax
from .backend import get_backend, lowp
from .layers import Conv2D
from .params import python_value
from .threads import kernel_thread_limits

PRECISIONS = ("int8", "bf16")
CALIBRATIONS = ("max", "percentile")
_CODECS = {"int8": Int8, "bf16": BF16}


def _check(precision, calibration, percentile, backend):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; received precision={precision!r}")
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}; received calibration={calibration!r}")
    if not (isinstance(percentile, numbers.Real) and not isinstance(percentile, bool) and 50 < percentile <= 100):
        raise ValueError(f"percentile must be a number in (50, 100]; received percentile={percentile!r}")
    if backend not in ("auto", "cython", "numpy"):
        raise ValueError(f"backend must be one of ('auto', 'cython', 'numpy'); received backend={backend!r}")


def _fitted_network(model):
    network = getattr(model, "__dict__", {}).get("network_")
    if network is None:
        raise ValueError(f"model must be a fitted CNNClassifier or CNNRegressor, or a Predictor "
                         f"(minicnn.load_predictor); received {type(model).__name__} without network_")
    return network


class QuantizedPredictor:
    """A fitted model predicting at reduced precision (made by :func:`quantize`).

    Attributes
    ----------
    precision : {"int8", "bf16"}
    model : estimator or Predictor
        The float32 model it was made from (its weights were copied: refitting it does not change this one).
    layer_precisions_ : list of (str, str)
        Each layer of the inference pass and the precision it runs at (a 2x2 max-pool after an int8 conv runs
        inside the conv's kernel, on its int32 sums: ``int8``; so does a flatten or an inverted dropout between
        two int8 layers, which passes their uint8 data on).
    agreement_ : float or None
        Classifiers: fraction of the validation samples (the calibration samples when no validation data was
        given) whose top-1 class equals the float32 model's; None for a regressor or without data.
    max_abs_difference_ : float or None
        Largest absolute difference from the float32 model's ``predict_proba`` (classifier) or ``predict``
        (regressor) on the same samples.
    accuracy_, float32_accuracy_ : float or None
        Accuracy of this model and of the float32 model on ``(X_validation, y_validation)`` (classifiers,
        when ``y_validation`` was given).
    n_threads : int or None
        Threads of the kernels (the model's setting; may be changed).
    """

    def __init__(self, model, precision, steps, layer_precisions):
        self.model, self.precision, self._steps = model, precision, steps
        self.n_threads = python_value(getattr(model, "n_threads", None))
        self.layer_precisions_ = layer_precisions
        self.agreement_ = self.max_abs_difference_ = self.accuracy_ = self.float32_accuracy_ = None

    @property
    def _classifier(self):
        return hasattr(self.model, "classes_")

    def __repr__(self):
        return f"QuantizedPredictor({type(self.model).__name__}, precision={self.precision!r})"

    def _forward(self, images):
        network, f32 = _fitted_network(self.model), get_backend(self.model.backend)
        x = images
        with network.lock:
            if network.backend != self.model.backend:
                network.set_backend(self.model.backend)
            for step in self._steps:
                x = step.forward(x) if isinstance(step, Product) else step.forward(x, False)
            return np.array(x, dtype=np.float32, copy=True).reshape(len(images), -1), f32

    def _outputs(self, X, transform):
        images = self.model._images(X)
        network = _fitted_network(self.model)
        work = min(len(images), PREDICT_BATCH) * network.forward_work_per_sample()
        parts = []
        with kernel_thread_limits(self.n_threads, work, get_backend(self.model.backend)):
            for start in range(0, len(images), PREDICT_BATCH):
                raw, kernels = self._forward(images[start:start + PREDICT_BATCH])
                parts.append(transform(raw, kernels))
        values = np.concatenate(parts) if len(parts) != 1 else parts[0]
        return _finite(values.reshape(len(values), -1), images, network).reshape(values.shape)

    def predict(self, X):
        """Predicted labels (classifier) or targets (regressor) at this precision.

        Parameters
        ----------
        X : array-like
            As the model's ``predict`` accepts.

        Returns
        -------
        ndarray of shape (n,) (or (n, n_outputs) for a multi-output regressor)
        """
        if self._classifier:
            return self.model.classes_[self._outputs(X, as_float64).argmax(axis=1)]
        values = self._outputs(X, as_float64)
        return values.ravel() if getattr(self.model, "_y_ndim", 1) == 1 else values

    def predict_proba(self, X):
        """Class probabilities at this precision (classifiers only).

        Returns
        -------
        ndarray of shape (n, n_classes), float64
        """
        if not self._classifier:
            raise AttributeError("predict_proba is only available for a classifier")
        return self._outputs(X, softmax)

    def _measure(self, X, y):
        """Fill the accuracy attributes from ``X`` (and labels ``y``) against the float32 model."""
        network, model = _fitted_network(self.model), self.model
        images = model._images(X)
        transform = softmax if self._classifier else as_float64
        f32, _ = batched_outputs(network, images, transform, n_outputs=model.n_outputs_, backend=model.backend,
                                 n_threads=self.n_threads, batch_size=PREDICT_BATCH)
        low = self._outputs(X, transform)
        self.max_abs_difference_ = float(np.abs(low - f32).max(initial=0.0))
        if self._classifier:
            self.agreement_ = float((low.argmax(axis=1) == f32.argmax(axis=1)).mean())
            if y is not None:
                y = np.asarray(y)
                self.accuracy_ = float((model.classes_[low.argmax(axis=1)] == y).mean())
                self.float32_accuracy_ = float((model.classes_[f32.argmax(axis=1)] == y).mean())


def _calibrate(model, steps, images, keep_values):
    """Each product's input over ``images`` (float32 pass): {step index: [per batch: its values (``keep_values``,
    for percentiles) or its minimum and maximum]}."""
    network = _fitted_network(model)
    seen = {i: [] for i, (layer, _) in enumerate(steps) if layer is not None}
    with network.lock, kernel_thread_limits(python_value(getattr(model, "n_threads", None)),
                                            min(len(images), PREDICT_BATCH) * network.forward_work_per_sample(),
                                            get_backend(model.backend)):
        if network.backend != model.backend:
            network.set_backend(model.backend)
        for start in range(0, len(images), PREDICT_BATCH):
            x = images[start:start + PREDICT_BATCH]
            for i, (_, step) in enumerate(steps):
                if i in seen:
                    seen[i].append(np.array(x, dtype=np.float32) if keep_values
                                   else np.array([x.min(), x.max()], dtype=np.float32))
                x = step.forward(x, False)
            _finite(np.asarray(x).reshape(len(x), -1), images[start:start + PREDICT_BATCH], network)   # else NaN ranges
    return seen


def quantize(model, X_calibration=None, *, precision="int8", calibration="max", percentile=99.99,
             X_validation=None, y_validation=None, backend=None):
    """A reduced-precision copy of a fitted model for inference (see the module docstring).

    Parameters
    ----------
    model : CNNClassifier, CNNRegressor or Predictor
        Fitted (or loaded by :func:`minicnn.load_predictor`).
    X_calibration : array-like or None
        Representative inputs (as ``predict`` accepts; a few hundred to a few thousand samples): int8 takes
        each layer input's range from them. Required for ``precision="int8"``; for ``"bf16"`` only used to
        measure the agreement when no validation data is given.
    precision : {"int8", "bf16"}, default="int8"
    calibration : {"max", "percentile"}, default="max"
        How an activation range is taken from the calibration data: the observed minimum and maximum, or the
        ``100 - percentile`` and ``percentile`` percentiles (holds every value of the calibration set in
        memory at once).
    percentile : float in (50, 100], default=99.99
    X_validation, y_validation : array-like or None
        Data on which the agreement with the float32 model (and, with labels, the accuracy) is measured.
    backend : {"auto", "cython", "numpy"} or None, default=None
        ``"numpy"`` runs the NumPy twins of the kernels (any CPU, slow); None: ``"numpy"`` for a model whose
        ``backend`` is ``"numpy"``, else ``"auto"`` (the compiled kernels).

    Returns
    -------
    QuantizedPredictor

    Raises
    ------
    ValueError
        For a bad parameter (named, with the value received), an unfitted model or missing calibration data.
    minicnn.backend.lowp.UnsupportedPrecisionError
        (a ``RuntimeError``) If this CPU lacks the instructions of ``precision`` (the feature is named, e.g.
        ``avx512_vnni``) and ``backend`` is not ``"numpy"``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from minicnn import CNNClassifier
    >>> from minicnn.quantize import quantize
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = CNNClassifier(layers=("conv8", "maxpool"), max_iter=3, random_state=0).fit(X / 16, y)
    >>> q = quantize(clf, X[:500] / 16, precision="int8", backend="numpy")
    >>> q.layer_precisions_
    [('Conv2D', 'int8'), ('MaxPool2D', 'int8'), ('Dropout', 'int8'), ('Flatten', 'int8'), ('Dense', 'int8')]
    >>> q.agreement_ > 0.95
    True
    """
    if backend is None:
        backend = "numpy" if getattr(model, "backend", None) == "numpy" else "auto"
    _check(precision, calibration, percentile, backend)
    _fitted_network(model)
    # a snapshot: a later fit / partial_fit / set_params of the source model must not change this copy's
    # classes, input shape or float32 layers behind its int8 / bf16 ones
    model = copy.deepcopy(model)
    network = _fitted_network(model)
    if y_validation is not None:
        if X_validation is None:
            raise ValueError("y_validation needs X_validation (the inputs whose labels it holds); received "
                             "X_validation=None")
        y_validation = np.asarray(y_validation)
        n = len(model._images(X_validation))
        if y_validation.ndim == 0 or len(y_validation) != n:
            raise ValueError(f"y_validation must hold one target per sample of X_validation ({n}); received "
                             f"shape {y_validation.shape}")
        if not hasattr(model, "classes_"):
            raise ValueError("y_validation is used for a classifier's accuracy; this model is a regressor "
                             "(its agreement is measured by max_abs_difference_ on X_validation alone)")
    if precision == "int8" and X_calibration is None:
        raise ValueError("precision='int8' needs calibration data: pass X_calibration (a few hundred "
                         "representative inputs); received X_calibration=None")
    kernels = lowp.kernels(precision, backend)
    codec = _CODECS[precision](kernels)
    layers = [(product_layer(layer), layer) for layer in network._inference_layers()]
    images = model._images(X_calibration) if X_calibration is not None else None
    if images is not None and len(images) == 0:
        raise ValueError("X_calibration holds no samples")
    ranges = {}
    if precision == "int8":
        seen = _calibrate(model, [(p if p is not None and _fits_int32(p) else None, layer) for p, layer in layers],
                          images, keep_values=calibration == "percentile")
        ranges = {i: activation_range(values, calibration, percentile) for i, values in seen.items()}
        flat = [f"{type(layers[i][0]).__name__} (inference layer {i})" for i, r in sorted(ranges.items())
                if r == (0.0, 0.0)]
        if flat:
            warnings.warn(f"X_calibration gives {', '.join(flat)} an input that is 0 everywhere, so int8 holds it "
                          f"as 0 whatever later inputs bring and the quantized model's outputs do not depend on "
                          f"them; calibrate on representative inputs (e.g. a sample of the training data)",
                          UserWarning, stacklevel=2)
    steps, names, owners, i = [], [], [], 0   # owners: the step each name belongs to
    while i < len(layers):
        p, layer = layers[i]
        if p is None or (precision == "int8" and i not in ranges):
            steps.append(layer)
            names.append((type(layer).__name__, "float32"))
            owners.append(layer)
            i += 1
            continue
        following = layers[i + 1][1] if i + 1 < len(layers) else None
        pool = following if isinstance(p, Conv2D) and fusable_pool(p, following) else None
        steps.append(Product(p, codec, ranges.get(i), pool))
        names += [(type(p).__name__, precision)] + ([(type(pool).__name__, precision)] if pool else [])
        owners += [steps[-1]] * (2 if pool else 1)
        i += 2 if pool else 1
    chained = chain_products(steps)
    kept = {id(step) for step in chained}   # the layers a chain leaves out pass its uint8 data on
    names = [(type(step).__name__, "float32" if id(step) in kept else precision) if not isinstance(step, Product)
             else name for step, name in zip(owners, names)]
    quantized = QuantizedPredictor(model, precision, chained, names)
    if X_validation is not None or X_calibration is not None:
        quantized._measure(X_validation if X_validation is not None else X_calibration,
                           y_validation if X_validation is not None else None)
    return quantized


def _fits_int32(layer):
    """Whether an int8 product of ``layer`` cannot overflow its int32 accumulators."""
    w = layer.params["w"]
    return w.size // w.shape[-1] <= INT8_MAX_K
