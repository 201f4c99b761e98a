"""Predict from a saved model without scikit-learn: :func:`load_predictor` and :class:`Predictor`.

``minicnn.load`` returns a full estimator, which means importing scikit-learn:
~1 s in a fresh process here (``sklearn.base`` pulls in SciPy's statistics and
pandas), against ~0.1 s for minicnn itself, loading and one prediction. A
batch job or a service that only predicts can use :func:`load_predictor`
instead: it reads the same file with the same checks (:mod:`minicnn.io`), and
the returned :class:`Predictor` gives the same predictions using NumPy and the
compiled kernels only.
"""

import numpy as np

from .architecture import network_for
from .placement import plan
from ._caller import warn
from .inputs import already_prepared, prepare_X, user_shape_to_nhwc
from ._predict import PREDICT_BATCH, as_float64, batched_outputs, check_mc_samples, log_softmax, mc_offset, softmax
from .params import TABLE, invalid
from .preprocessing import is_paths

#: Constructor parameters of :class:`~minicnn.CNNClassifier` and :class:`~minicnn.CNNRegressor`
#: (the table of :mod:`minicnn.params`), which a saved model's parameters are checked against.
PARAM_RULES = TABLE


class Predictor:
    """A fitted model loaded for prediction only, without scikit-learn (see :func:`load_predictor`).

    Predicts exactly like the estimator that was saved (same kernels, same
    batches); it cannot be fitted further. Use :func:`minicnn.load` for a
    full estimator.

    Attributes
    ----------
    estimator : {"CNNClassifier", "CNNRegressor"}
        The class that was saved.
    params : dict
        Its constructor parameters; each is also an attribute (``backend``
        and ``n_threads`` may be changed before predicting).
    classes_ : ndarray
        Class labels (classifiers only).
    n_features_in_, input_shape_, n_outputs_, network_
        As on the estimator.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_digits
    >>> from minicnn import CNNClassifier, load_predictor
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0                                     # gray levels 0..16 -> [0, 1]
    >>> clf = CNNClassifier(layers=("conv4", "maxpool"), max_iter=1, random_state=0).fit(X[:100], y[:100])
    >>> path = os.path.join(tempfile.mkdtemp(), "digits.npz")
    >>> clf.save(path)
    >>> predictor = load_predictor(path)
    >>> bool((predictor.predict(X[:20]) == clf.predict(X[:20])).all())
    True
    """

    def __init__(self, estimator, params):
        self.estimator = estimator
        self.params = dict(params)
        for name, value in self.params.items():
            setattr(self, name, value)

    def _plan(self):
        """Parse ``layers`` and place dropout (raises ValueError naming the bad parameter)."""
        return plan(self)

    def _new_network(self, tokens, specs, n_outputs, rng):
        return network_for(self, tokens, specs, n_outputs, rng)

    def __repr__(self):
        return f"Predictor({self.estimator}, layers={self.layers!r}, input_shape_={self.input_shape_})"

    # ------------------------------------------------------------------ inputs
    def _images(self, X):
        """``X`` as C-contiguous NHWC float32 images of the fitted shape (:func:`minicnn.inputs.prepare_X`).

        Image files are read by :func:`minicnn.images.model_input`, imported only when ``X`` names files (the
        image reader and what it imports, ``hashlib`` among them, cost ~6 ms of a cold start that predicts arrays).
        """
        ready = already_prepared(self, X)   # the usual float32 array of the fitted shape (never image files)
        if ready is not None:
            return ready
        if is_paths(X):
            from .images import model_input

            X = model_input(self, X)
        return prepare_X(self, X, reset=False)

    def _check_feature_names_in(self, X):
        columns = getattr(X, "columns", None)
        fitted = getattr(self, "feature_names_in_", None)
        if columns is not None and fitted is not None:
            names = [str(c) for c in columns]
            if names != list(fitted):
                raise ValueError(f"The feature names of X do not match those seen in fit: received "
                                 f"{names[:5]}{'...' if len(names) > 5 else ''}, expected "
                                 f"{list(fitted)[:5]}{'...' if len(fitted) > 5 else ''}")
        elif fitted is not None:
            warn(f"X does not have valid feature names, but {self.estimator} was fitted with feature names",
                 UserWarning)

    # ------------------------------------------------------------------ prediction
    def _outputs(self, X, transform, mc_samples=None):
        images = self._images(X)
        offset = 0 if mc_samples is None else mc_offset(self.random_state)
        values, _ = batched_outputs(self.network_, images, transform, n_outputs=self.n_outputs_,
                                    backend=self.backend, n_threads=self.n_threads, mc_samples=mc_samples,
                                    batch_size=PREDICT_BATCH, mc_offset=offset)
        return values

    def _require_classifier(self, method):
        if self.estimator != "CNNClassifier":
            raise AttributeError(f"{method} is only available for a CNNClassifier; this model is a {self.estimator}")

    def predict(self, X, mc_samples=None):
        """Predicted labels (classifier) or targets (regressor), as the saved estimator's ``predict``.

        Parameters
        ----------
        X : array-like
            Same layouts as the estimator accepts.
        mc_samples : int or None, default=None
            Regressors only: average of that many Monte-Carlo dropout passes.

        Returns
        -------
        ndarray of shape (n,) (or (n, n_outputs) for a multi-output regressor)
        """
        if self.estimator == "CNNClassifier":
            if mc_samples is not None:
                raise ValueError(f"mc_samples is not a parameter of a classifier's predict (use predict_proba); "
                                 f"received mc_samples={mc_samples!r}")
            return self.classes_[self._outputs(X, as_float64).argmax(axis=1)]
        values = self._outputs(X, as_float64, check_mc_samples(mc_samples))
        return values.ravel() if getattr(self, "_y_ndim", 1) == 1 else values

    def predict_proba(self, X, mc_samples=None):
        """Class probabilities (classifiers only), as ``CNNClassifier.predict_proba``.

        Returns
        -------
        ndarray of shape (n, n_classes), float64
        """
        self._require_classifier("predict_proba")
        return self._outputs(X, softmax, check_mc_samples(mc_samples))

    def predict_uncertainty(self, X, mc_samples=30):
        """Monte-Carlo dropout mean and standard deviation, as the estimator's ``predict_uncertainty``.

        Returns
        -------
        mean, std : ndarray of shape (n, n_outputs), float64
            Class probabilities (classifier) or predictions (regressor; 1-D
            for a 1-D target).
        """
        mc_samples = check_mc_samples(mc_samples, allow_none=False)
        images = self._images(X)
        mean, std = batched_outputs(self.network_, images, softmax if self.estimator == "CNNClassifier" else as_float64,
                                    n_outputs=self.n_outputs_, backend=self.backend, n_threads=self.n_threads,
                                    mc_samples=mc_samples, with_std=True, batch_size=PREDICT_BATCH,
                                    mc_offset=mc_offset(self.random_state))
        if self.estimator != "CNNClassifier" and getattr(self, "_y_ndim", 1) == 1:
            return mean.ravel(), std.ravel()
        return mean, std

    def transform(self, X, layer=None, mc_samples=None):
        """Embeddings of one layer, flattened per sample, as the estimator's ``transform``.

        Returns
        -------
        ndarray of shape (n, n_features), float64
        """
        from .embedding import embed, resolve_layer

        mc_samples = check_mc_samples(mc_samples)
        images = self._images(X)
        index = resolve_layer(self.network_, layer)
        return embed(self.network_, images, index, backend=self.backend, n_threads=self.n_threads,
                     mc_samples=mc_samples, mc_offset=0 if mc_samples is None else mc_offset(self.random_state),
                     batch_size=PREDICT_BATCH)

    def get_feature_names_out(self, input_features=None):
        """Names of :meth:`transform`'s default columns: ``"<estimator lowercase><i>"``, as the estimator's.

        Returns
        -------
        ndarray of str, shape (n_features,)
        """
        from .embedding import resolve_layer

        width = 1
        for d in self.network_.layers[resolve_layer(self.network_, None)].output_shape:
            width *= int(d)
        prefix = self.estimator.lower()
        return np.asarray([f"{prefix}{i}" for i in range(width)], dtype=object)

    def predict_log_proba(self, X):
        """Log class probabilities (classifiers only), as ``CNNClassifier.predict_log_proba``.

        Returns
        -------
        ndarray of shape (n, n_classes), float64
        """
        self._require_classifier("predict_log_proba")
        return self._outputs(X, log_softmax)


def _make_predictor(reader, header, backend):
    from .io import header_params

    params = header_params(reader, header, TABLE, backend)
    for name, value in params.items():
        problem = invalid(name, value)
        if problem is not None:
            reader.fail(f"invalid params (The {name!r} parameter must be {problem}. Got {value!r} instead.)")
    predictor = Predictor(header["estimator"], params)
    try:
        user_shape_to_nhwc(predictor.input_shape, predictor.data_format)
        tokens, specs = predictor._plan()
    except (ValueError, TypeError) as exc:
        reader.fail(f"invalid params ({exc})")
    return predictor, tokens, specs


def load_predictor(path, backend=None, precision="float32", X_calibration=None, calibration="max"):
    """Load a model written by :func:`minicnn.io.save` for prediction only, without importing scikit-learn.

    Parameters
    ----------
    path : str or os.PathLike
    backend : {"auto", "numpy", "numba", "cython"} or None, default=None
        Overrides the saved ``backend`` parameter (None keeps it).
    precision : {"float32", "int8", "bf16"}, default="float32"
        ``"int8"`` / ``"bf16"``: the model quantized by :func:`minicnn.quantize.quantize` (calibrated on
        ``X_calibration``), where the CPU has the instructions.
    X_calibration : array-like or None, default=None
        Calibration inputs of ``precision="int8"`` (see :func:`minicnn.quantize.quantize`; its parameter of
        the same name). Refused with ``precision="float32"``, which uses none.
    calibration : {"max", "percentile"}, default="max"
        How ``precision="int8"`` takes an activation range from ``X_calibration``
        (:func:`minicnn.quantize.quantize`'s parameter of the same name).

    Returns
    -------
    Predictor or QuantizedPredictor

    Raises
    ------
    ModelFileError
        (a ``ValueError``) For anything :func:`minicnn.load` refuses: the
        same checks run on the same file.
    OSError
        If ``path`` cannot be opened.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "bad.npz")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"not a zip")
    >>> load_predictor(path)
    Traceback (most recent call last):
    ...
    minicnn.io.ModelFileError: ... not a valid minicnn model file: not a zip archive (BadZipFile: ...)
    """
    if backend is not None and invalid("backend", backend) is not None:
        raise ValueError(f"backend must be one of {TABLE['backend'].choices} or None; received backend={backend!r}")
    if precision not in ("float32", "int8", "bf16"):
        raise ValueError(f"precision must be one of ('float32', 'int8', 'bf16'); received precision={precision!r}")
    if precision == "float32" and (X_calibration is not None or calibration != "max"):
        given = "X_calibration" if X_calibration is not None else f"calibration={calibration!r}"
        raise ValueError(f"{given} is only used with precision='int8' or 'bf16'; received precision='float32'")
    from .io import read_model

    predictor, _ = read_model(path, backend, _make_predictor, restore_rng=False)
    if precision != "float32":
        from .quantize import quantize

        return quantize(predictor, X_calibration, precision=precision, calibration=calibration)
    return predictor
