"""Turn user inputs (2-D, 3-D or 4-D, any real dtype, either layout) into C-contiguous NHWC float32 images.

Conventions (documented on the estimators):

* 4-D ``X`` is ``(n, height, width, channels)`` for ``data_format="channels_last"``
  and ``(n, channels, height, width)`` for ``"channels_first"``.
* 3-D ``X`` is ``(n, height, width)``: single-channel images.
* 2-D ``X`` is ``(n, n_features)``: flat images of shape ``input_shape`` (given
  in ``data_format`` order, flattened in that order). With
  ``input_shape=None``, a perfect-square width ``s * s`` means ``s x s``
  single-channel images; any other width is read as a ``1 x n_features``
  single-channel strip (so tabular data works with ``padding="same"``).

``n_features_in_`` is always the number of values per sample
(``height * width * channels``).
"""

import math
import numbers
import re

import numpy as np

#: dtype kinds refused outright (strings, bytes, void/structured, datetimes): never silently parsed as numbers.
_REFUSED_KINDS = {"U": "string", "S": "bytes", "V": "structured/void", "M": "datetime", "m": "timedelta"}
_NAMES_X = re.compile(r"\bX\b")


def describe(X, name="X"):
    """A short description of what was received, for error messages (shape and dtype, never the values).

    Examples
    --------
    >>> describe(np.zeros((2, 3), dtype=np.float32))
    'X with shape (2, 3) and dtype float32'
    >>> describe(None)
    'X=None'
    """
    if X is None:
        return f"{name}=None"
    shape, dtype = getattr(X, "shape", None), getattr(X, "dtype", None)
    if shape is not None:
        text = f"{name} with shape {tuple(shape)}"
        if isinstance(dtype, np.dtype):
            text += f" and dtype {dtype}"
        return text if isinstance(X, np.ndarray) else f"{text} (a {type(X).__name__})"
    if isinstance(X, (list, tuple)):
        return f"{name} as a {type(X).__name__} of length {len(X)}"
    return f"{name} of type {type(X).__name__}"


def _check_kind(X):
    """Refuse sparse matrices, strings, complex numbers and other non-numeric dtypes, naming what was received."""
    if X is None:
        raise ValueError("Expected X to be an array-like of samples (2-D, 3-D or 4-D); received X=None")
    if hasattr(X, "toarray") and hasattr(X, "nnz"):   # scipy.sparse matrix or array
        raise TypeError(f"Sparse data was passed for X, but dense input is required: received {describe(X)}. "
                        f"Use X.toarray() to convert it to a dense array.")
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, np.dtype):
        if dtype.kind == "c":
            raise ValueError(f"Complex data not supported: received {describe(X)}; pass real numbers")
        if dtype.kind in _REFUSED_KINDS:
            raise ValueError(f"Expected numeric X; received {describe(X)} ({_REFUSED_KINDS[dtype.kind]} values are "
                             f"not converted to numbers: convert them explicitly, e.g. X.astype(np.float32))")


def _as_array(X):
    """Lists and tuples become arrays (a ragged nesting is an error naming X); other inputs pass through."""
    if not isinstance(X, (list, tuple)):
        return X
    try:
        return np.asarray(X)
    except ValueError as exc:
        raise ValueError(f"X is a ragged nested {type(X).__name__} of length {len(X)} (samples of different "
                         f"shapes): {exc}") from None


def _validated(call, X):
    """Run a scikit-learn validation ``call()``; errors that do not name X get what was received appended."""
    try:
        return call()
    except (ValueError, TypeError) as exc:
        message = str(exc)
        if _NAMES_X.search(message):
            raise
        kind = ValueError if isinstance(exc, ValueError) else TypeError
        raise kind(f"{message} (received {describe(X)})") from exc


def _ndim(X):
    ndim = getattr(X, "ndim", None)
    if ndim is None and isinstance(X, (list, tuple)):
        try:
            ndim = np.ndim(X)
        except ValueError:   # ragged nesting: let check_array raise its message
            ndim = None
    return ndim


def user_shape_to_nhwc(input_shape, data_format):
    """Validate ``input_shape`` (in ``data_format`` order) and return it as ``(h, w, c)``, or None.

    Examples
    --------
    >>> user_shape_to_nhwc((1, 28, 28), "channels_first")
    (28, 28, 1)
    >>> user_shape_to_nhwc((8, 8), "channels_last")
    (8, 8, 1)
    """
    if input_shape is None:
        return None
    ok = (isinstance(input_shape, (tuple, list)) and len(input_shape) in (2, 3)
          and all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in input_shape))
    if not ok:
        raise ValueError(f"Expected input_shape to be None, (height, width) or a 3-tuple of positive ints "
                         f"in data_format order ((height, width, channels) for 'channels_last', (channels, height, "
                         f"width) for 'channels_first'). Received: input_shape={input_shape!r}")
    dims = tuple(int(d) for d in input_shape)
    if len(dims) == 2:
        return (*dims, 1)
    return (dims[1], dims[2], dims[0]) if data_format == "channels_first" else dims


def _shape_for_flat(n_features, nhwc_shape, input_shape):
    if nhwc_shape is not None:
        if math.prod(nhwc_shape) != n_features:
            raise ValueError(f"input_shape={tuple(input_shape)!r} holds {math.prod(nhwc_shape)} values per sample, "
                             f"but X has {n_features} features")
        return nhwc_shape
    side = math.isqrt(n_features)
    return (side, side, 1) if side * side == n_features else (1, n_features, 1)


def _flat_to_nhwc(flat, shape, data_format):
    if data_format == "channels_first":
        h, w, c = shape
        return np.ascontiguousarray(flat.reshape(len(flat), c, h, w).transpose(0, 2, 3, 1))
    return flat.reshape(len(flat), *shape)


def _already_prepared(estimator, X):
    """``X`` as NHWC images when it needs no conversion at predict time, else None.

    A finite, C-contiguous float32 ndarray of exactly the fitted layout (flat
    ``(n, n_features_in_)`` or channels-last ``(n, *input_shape_)``) skips
    scikit-learn's generic checks, which cost 110-170 us, ten times the
    network's own forward pass on one digits sample. Anything else (and any
    non-finite value, for its error message) takes the full path.
    """
    if (type(X) is not np.ndarray or X.dtype != np.float32 or not X.flags.c_contiguous
            or X.shape[:1] == (0,) or hasattr(estimator, "feature_names_in_")):
        return None
    shape = getattr(estimator, "input_shape_", None)
    if shape is None:
        return None
    if X.ndim == 2 and X.shape[1] == estimator.n_features_in_ and (
            estimator.data_format == "channels_last" or shape[2] == 1):
        images = X.reshape(X.shape[0], *shape)
    elif X.ndim == 4 and estimator.data_format == "channels_last" and X.shape[1:] == tuple(shape):
        images = X
    else:
        return None
    return images if np.isfinite(X).all() else None


def prepare_X(estimator, X, *, reset):
    """Validate ``X`` and return C-contiguous NHWC float32 images.

    With ``reset=True`` (fit) sets ``estimator.n_features_in_`` (and
    ``feature_names_in_`` for data frames) and ``estimator.input_shape_``;
    otherwise checks ``X`` against them.
    """
    data_format = estimator.data_format
    if not reset:
        ready = _already_prepared(estimator, X)
        if ready is not None:
            return ready
    # imported here: this module also serves the scikit-learn-free Predictor (minicnn.predictor)
    from sklearn.utils.validation import check_array, validate_data

    _check_kind(X)
    X = _as_array(X)
    _check_kind(X)
    ndim = _ndim(X)
    if ndim is not None and ndim < 2:
        raise ValueError(f"Expected X with 2 to 4 dimensions ((n, n_features), (n, height, width) or 4-D images "
                         f"in data_format); received {describe(X)}. Reshape your data: X.reshape(1, -1) for a "
                         f"single sample, X.reshape(-1, 1) for a single feature.")
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1 and shape[0] == 0:
        raise ValueError(f"X has 0 samples; at least 1 is required: received {describe(X)}")
    if ndim is not None and ndim > 2:
        images = _validated(lambda: check_array(X, allow_nd=True, dtype=np.float32, order="C", input_name="X",
                                                estimator=estimator), X)
        if images.ndim > 4:
            raise ValueError(f"Expected X with 2 to 4 dimensions; received X with shape {images.shape}")
        if images.ndim == 3:
            images = images[..., np.newaxis]
        elif data_format == "channels_first":
            images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
        validate_data(estimator, images.reshape(len(images), -1), reset=reset, skip_check_array=True)
        shape = images.shape[1:]
        expected = (user_shape_to_nhwc(estimator.input_shape, data_format) if reset
                    else estimator.input_shape_)
        if expected is not None and tuple(expected) != shape:
            raise ValueError(f"X holds images of shape (height, width, channels)={shape}, but "
                             f"{'input_shape' if reset else 'the fitted model'} expects {tuple(expected)} "
                             f"(data_format={data_format!r})")
        if reset:
            estimator.input_shape_ = shape
        return images
    flat = _validated(lambda: validate_data(estimator, X, reset=reset, dtype=np.float32, order="C"), X)
    if reset:
        nhwc = user_shape_to_nhwc(estimator.input_shape, data_format)
        estimator.input_shape_ = _shape_for_flat(flat.shape[1], nhwc, estimator.input_shape)
    return _flat_to_nhwc(flat, estimator.input_shape_, data_format)
