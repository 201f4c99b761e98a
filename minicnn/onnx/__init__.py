"""Export a fitted model to ONNX, so it runs wherever ONNX Runtime runs: :func:`export_onnx`.

The graph is built with ``onnx.helper`` from the fitted network's layers (one
translation per layer kind, :mod:`minicnn.onnx._graph`); :func:`register_skl2onnx`
makes the estimators convertible inside a scikit-learn ``Pipeline`` by
``skl2onnx.to_onnx``. Importing this module imports neither ``onnx`` nor
scikit-learn: they are imported when an export runs (``pip install`` the
``[onnx]`` extra, see :data:`INSTALL_HINT`).

Opset
-----
:data:`DEFAULT_OPSET` is 13: the lowest opset in which every operator the
export uses (Conv, MaxPool, AveragePool, GlobalAveragePool, Gemm,
BatchNormalization, Relu, LeakyRelu, Tanh, Sigmoid, Mul, Transpose, Reshape,
Flatten, Softmax, ArgMax, Gather) has its present meaning (Softmax normalizes
one axis since 13; earlier it flattened the trailing axes). Later opsets
change none of these operators for this use, so the lowest one runs on the
widest range of runtimes (ONNX Runtime >= 1.7, onnxruntime-web, mobile).
``opset`` may be raised up to the installed onnx package's newest.

What cannot be exported
-----------------------
Monte-Carlo dropout (``mc_samples``) and ``predict_log_proba`` (take the log of
``probabilities``); ``classes_`` of other kinds than integers, bools, floats
and strings; input validation beyond the tensor's type and shape (ONNX Runtime
checks those; NaN inputs propagate instead of raising).
"""

import numbers
import os

#: The command that installs what an export needs (one place: errors and docs quote it).
INSTALL_HINT = "pip install onnx onnxruntime skl2onnx, the onnx extra of minicnn-engine"
#: Opset written when ``opset=None`` (see the module docstring for why).
DEFAULT_OPSET = 13
#: Lowest opset the translation supports.
MIN_OPSET = 13
#: Ranks of the ``X`` input: 2 = ``(n, n_features)``, 3 = ``(n, height, width)``, 4 = images in ``data_format``.
INPUT_NDIMS = (2, 3, 4)
#: Rank used when ``input_ndim=None``.
DEFAULT_INPUT_NDIM = 4

__all__ = ["export_onnx", "export_onnx_qdq", "to_onnx_model", "register_skl2onnx", "ExportError", "INSTALL_HINT",
           "DEFAULT_OPSET"]


class ExportError(ValueError):
    """A fitted model that cannot be written as ONNX (the message says which part and why)."""


def require(package, needed_by, install=INSTALL_HINT):
    """Import and return ``package``, or raise ImportError saying what needs it and how to install it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ImportError(f"{needed_by} needs the {package} package, which is not installed ({exc}); "
                          f"install it with: {install}") from None


def import_onnx():
    """Import and return the ``onnx`` package, or raise ImportError saying how to install it."""
    return require("onnx", "exporting to ONNX")


def check_opset(opset, onnx):
    """``opset`` (None: :data:`DEFAULT_OPSET`) validated against what this export and ``onnx`` support."""
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if not (isinstance(opset, numbers.Integral) and not isinstance(opset, bool)
            and MIN_OPSET <= opset <= newest):
        raise ValueError(f"opset must be an int in [{MIN_OPSET}, {newest}] (the newest this onnx {onnx.__version__} "
                         f"knows); received opset={opset!r}")
    return int(opset)   # a NumPy integer (np.int64(13)) as every other integer parameter


def to_onnx_model(model, *, opset=None, input_ndim=None, embedding=False):
    """Build the ONNX model of a fitted estimator or :class:`~minicnn.Predictor` (nothing written).

    Parameters and errors as :func:`export_onnx`.

    Returns
    -------
    onnx.ModelProto
        Checked by ``onnx.checker.check_model``; ``SerializeToString()`` gives
        the bytes ``onnxruntime.InferenceSession`` accepts.
    """
    onnx = import_onnx()
    from ._helper import build_model

    if not isinstance(embedding, bool):
        raise ValueError(f"Expected embedding to be a bool. Received: embedding={embedding!r}")
    return build_model(onnx, model, opset=check_opset(opset, onnx), input_ndim=input_ndim, embedding=embedding)


def export_onnx(model, path, *, opset=None, input_ndim=None, embedding=False):
    """Write a fitted model as an ONNX file that ONNX Runtime runs with the same outputs.

    Parameters
    ----------
    model : CNNClassifier, CNNRegressor or Predictor
        Fitted (a :class:`~minicnn.Predictor` from :func:`minicnn.load_predictor`
        is always fitted).
    path : str or os.PathLike
        File to write (replaced if it exists); its folder must exist.
    opset : int or None, default=None
        ONNX opset of the default domain; None writes :data:`DEFAULT_OPSET` (13).
    input_ndim : {2, 3, 4} or None, default=None
        Rank of the graph's ``X`` input, float32, any batch size ``N``:
        4 (the default, None) takes images in the model's ``data_format``
        (``(N, h, w, c)`` or ``(N, c, h, w)``; channels-last input is transposed
        inside the graph); 2 takes flat rows ``(N, n_features_in_)`` flattened in
        ``data_format`` order (as ``fit`` reads 2-D ``X`` with ``input_shape``);
        3 takes single-channel images ``(N, h, w)``. The estimators accept all
        three at ``predict``; an ONNX input has one rank, so pick the one your
        caller sends (the fitted model does not record which rank ``fit`` saw).
    embedding : bool, default=False
        Add an output ``embedding`` ``(N, n_features)`` float32: the
        penultimate layer's outputs, equal to ``transform(X)`` within float32
        rounding.

    Returns
    -------
    str
        ``path`` as written (``os.fspath``).

    Outputs of the graph (skl2onnx's convention):

    * classifier: ``label`` ``(N,)``, the labels of ``classes_`` with their type
      (int64 for integer classes, string for strings, bool, double), equal to
      ``predict``; ``probabilities`` ``(N, n_classes)`` float32, equal to
      ``predict_proba`` within 1e-5;
    * regressor: ``variable`` float32 shaped like ``predict``: ``(N,)`` for a
      1-D target, ``(N, n_outputs)`` for a 2-D one.

    Raises
    ------
    ImportError
        If the ``onnx`` package is not installed (the message gives :data:`INSTALL_HINT`).
    TypeError
        If ``model`` is not a minicnn estimator or Predictor.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        For a bad ``opset`` or ``input_ndim``, or a model that cannot be
        exported (:class:`ExportError`, e.g. object
        ``classes_`` that are not all strings).
    OSError
        If ``path`` cannot be written (as ``open(path, "wb")``; a read-only
        file is refused). The file is written atomically (see
        :mod:`minicnn.files`): a failed export leaves the old file whole.

    Examples
    --------
    >>> import os, tempfile
    >>> import onnxruntime as ort
    >>> from sklearn.datasets import load_digits
    >>> from minicnn import CNNClassifier, export_onnx
    >>> X, y = load_digits(return_X_y=True)
    >>> X = (X / 16).astype("float32").reshape(-1, 8, 8, 1)
    >>> clf = CNNClassifier(layers=("conv4", "maxpool"), max_iter=1, random_state=0).fit(X[:200], y[:200])
    >>> path = export_onnx(clf, os.path.join(tempfile.mkdtemp(), "digits.onnx"))
    >>> session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    >>> [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    (['X'], ['label', 'probabilities'])
    >>> label, proba = session.run(None, {"X": X[:20]})
    >>> bool((label == clf.predict(X[:20])).all()), bool(abs(proba - clf.predict_proba(X[:20])).max() < 1e-5)
    (True, True)
    """
    target = os.fspath(path)
    proto = to_onnx_model(model, opset=opset, input_ndim=input_ndim, embedding=embedding)
    from ..files import write_bytes

    write_bytes(target, proto.SerializeToString())   # atomically: a failed export leaves the old file whole
    return target


def export_onnx_qdq(quantized, path, *, opset=13):
    """Write an int8 model of :func:`minicnn.quantize.quantize` as an ONNX file in the QDQ format.

    Each int8 conv and dense layer gets its calibrated activation quantization (uint8 scale and zero point) and
    its per-channel int8 weights as QuantizeLinear / DequantizeLinear pairs around the float32 graph of
    :func:`export_onnx` (ONNX Runtime's static quantization format: its optimizer runs them as integer kernels).

    Parameters
    ----------
    quantized : QuantizedPredictor
        ``precision="int8"``, every conv and dense layer int8 (no BatchNorm folded, no conv inside a block).
    path : str or os.PathLike
    opset : int, default=13
        At least 13 (per-channel ``DequantizeLinear``).

    Returns
    -------
    str
        ``path`` as written (atomically).

    Raises
    ------
    TypeError
        If ``quantized`` is not a :class:`minicnn.quantize.QuantizedPredictor`.
    ImportError
        If ``onnx`` is not installed.
    ValueError
        (:class:`ExportError`) For a model the format cannot hold as said above, or an opset below 13.
    """
    from ..quantize import QuantizedPredictor

    if not isinstance(quantized, QuantizedPredictor):
        raise TypeError(f"export_onnx_qdq needs the int8 model minicnn.quantize.quantize returns (export_onnx writes a "
                        f"float32 model); received {type(quantized).__name__}")
    onnx = import_onnx()
    if opset is None or check_opset(opset, onnx) < 13:
        raise ValueError(f"export_onnx_qdq needs opset >= 13 (per-channel DequantizeLinear); received opset={opset!r}")
    from ..files import write_bytes
    from ._qdq import to_qdq_model

    target = os.fspath(path)
    write_bytes(target, to_qdq_model(quantized, opset=opset).SerializeToString())
    return target


def register_skl2onnx():
    """Register the estimators with skl2onnx, so ``skl2onnx.to_onnx`` converts a Pipeline ending in one.

    Registers a parser, shape calculator and converter for
    :class:`~minicnn.CNNClassifier` (options ``zipmap`` in {True, False,
    "columns"} and ``nocl``, handled as for skl2onnx's own classifiers) and
    :class:`~minicnn.CNNRegressor`. The estimator's input is the 2-D (or
    image-shaped) float tensor the previous step produces; a double input is
    cast to float32 first. Safe to call more than once.

    Raises
    ------
    ImportError
        If skl2onnx (or onnx) is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from skl2onnx import to_onnx
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from minicnn import CNNClassifier
    >>> from minicnn.onnx import register_skl2onnx
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X.astype(np.float32)
    >>> pipe = make_pipeline(StandardScaler(), CNNClassifier(layers=("conv4", "maxpool"), input_shape=(8, 8),
    ...                                                      max_iter=1, random_state=0)).fit(X[:200], y[:200])
    >>> register_skl2onnx()
    >>> onx = to_onnx(pipe, X[:1], options={"zipmap": False})
    >>> session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    >>> label, proba = session.run(None, {"X": X[:20]})
    >>> bool((label == pipe.predict(X[:20])).all()), bool(abs(proba - pipe.predict_proba(X[:20])).max() < 1e-5)
    (True, True)
    """
    from ._skl2onnx import register

    register()
