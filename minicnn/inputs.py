"""THE validator of user arrays: 2-D, 3-D or 4-D, any real dtype, either layout -> C-contiguous NHWC float32.

The estimators (fit and predict) and :class:`~minicnn.predictor.Predictor`
call :func:`prepare_X`; the prediction path (``reset=False``) never imports
scikit-learn, so both faces give the same errors and warnings.

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

Probable mistakes are caught: one image without the batch axis, images that
look channels-first under ``data_format="channels_last"`` (or the reverse),
unscaled 8-bit gray levels (integer values in 0..255, any dtype), a flat width that is not a perfect square without
``input_shape``, zero-sized image dimensions, and values too large for
float32 arithmetic (:data:`MAX_ABS`).
"""

import math
import numbers
import re

import numpy as np

from ._caller import warn
from ._predict import compiled_checks

#: dtype kinds refused outright (strings, bytes, void/structured, datetimes): never silently parsed as numbers.
_REFUSED_KINDS = {"U": "string", "S": "bytes", "V": "structured/void", "M": "datetime", "m": "timedelta"}
_NAMES_X = re.compile(r"\bX\b")

#: Largest accepted |value| in X: sqrt(float32 max) ~ 1.8e19. Beyond it, squares (BatchNorm variance, the MSE)
#: and layer sums overflow float32, and the backends turn the overflow into different garbage (NaN on one,
#: finite nonsense on others): refused with a clear error instead.
MAX_ABS = float(np.sqrt(np.finfo(np.float32).max))

#: Largest float32 sum of squares :func:`_within_max_abs` accepts: below the float32 square of the smallest
#: float32 above MAX_ABS (infinity: the limit is then the float32 maximum), so no value above MAX_ABS passes.
with np.errstate(over="ignore"):
    _SQUARES_LIMIT = float(np.nextafter(np.square(np.nextafter(np.float32(MAX_ABS), np.float32(np.inf))),
                                        np.float32(0)))

#: The native float32 dtype (one instance): an identity test is ~0.3 us cheaper than ``dtype != np.float32``
#: per prediction; any other float32 dtype object (e.g. byte-swapped) takes the full checks.
_FLOAT32 = np.dtype(np.float32)


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


def _data_format(model, reset):
    """The layout X is read in: the fitted one for predictions (set_params takes effect at the next fit)."""
    built = None if reset else model.__dict__.get("_built_with")
    return built["data_format"] if built else model.data_format


def _model_name(model):
    name = getattr(model, "estimator", None)   # a Predictor names the class that was saved
    return name if isinstance(name, str) else type(model).__name__


def _user_order(shape, data_format):
    """NHWC per-sample ``shape`` in the user's ``data_format`` order."""
    h, w, c = shape
    return (c, h, w) if data_format == "channels_first" else (h, w, c)


def _check_values(values, X):
    """Refuse NaN, infinity and values too large for float32 arithmetic (see :data:`MAX_ABS`)."""
    if np.isnan(values).any():
        raise ValueError(f"Input X contains NaN (received {describe(X)})")
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if not math.isfinite(largest):
        raise ValueError(f"Input X contains infinity or a value too large for float32 (received {describe(X)})")
    if largest > MAX_ABS:
        raise ValueError(f"Input X contains values too large for float32 arithmetic: |X| reaches {largest:.3g}, "
                         f"above {MAX_ABS:.3g} (sqrt of the float32 maximum, beyond which squares and layer sums "
                         f"overflow). Scale X (e.g. StandardScaler) (received {describe(X)})")


def _check_image_shape(shape, X):
    if 0 in shape:
        raise ValueError(f"X holds images with a zero-sized dimension: per-sample shape {tuple(shape)} "
                         f"(received {describe(X)}); every image needs height, width and channels >= 1")


def _gray_levels_top(values, chunk=1 << 22):
    """The maximum of ``values`` when they look like unscaled 8-bit gray levels, else None.

    Gray levels: every value an integer in 0..255 and the maximum above 1
    (0/1 masks are already scaled), whatever the dtype (uint8, int64 from a
    CSV, floats holding integers). Checked in chunks, stopping at the first
    non-integer value (bounded extra memory).
    """
    if not values.size:
        return None
    top, low = float(values.max()), float(values.min())
    if not (1 < top <= 255 and low >= 0):
        return None
    flat = values.reshape(-1)
    for start in range(0, flat.size, chunk):
        part = flat[start:start + chunk]
        if not np.array_equal(part, np.rint(part)):
            return None
    return int(top)


def _warn_layout(model, X, images, data_format):
    """Warnings at fit for inputs that are probably a mistake (the model would train, badly)."""
    shape = getattr(X, "shape", None)
    top = _gray_levels_top(images)
    if top is not None:
        dtype = getattr(X, "dtype", None)
        received = f"dtype {dtype}" if isinstance(dtype, np.dtype) else type(X).__name__
        warn(f"X holds integer values in 0..{top} ({received}): they look like unscaled 8-bit gray levels and are "
             f"used as they are. Networks train well on inputs of order 1: scale them, e.g. X / 255 (or "
             f"MinMaxScaler for flat X).", UserWarning)
    if shape is not None and len(shape) == 4:
        a, b, c = shape[1:]
        if data_format == "channels_last" and a <= 4 < c and b > 4:
            warn(f"X has shape {tuple(shape)} and was read with data_format='channels_last' as {a}x{b} images "
                 f"with {c} channels; it looks channels-first ({a} channel(s) of {b}x{c}). If it is, pass "
                 f"data_format='channels_first' (or X.transpose(0, 2, 3, 1)).", UserWarning)
        elif data_format == "channels_first" and c <= 4 < a and b > 4:
            warn(f"X has shape {tuple(shape)} and was read with data_format='channels_first' as {b}x{c} images "
                 f"with {a} channels; it looks channels-last ({c} channel(s) of {a}x{b}). If it is, pass "
                 f"data_format='channels_last' (or X.transpose(0, 3, 1, 2)).", UserWarning)


def already_prepared(estimator, X):
    """``X`` as NHWC images when it needs no conversion at predict time, else None.

    A finite, C-contiguous float32 ndarray of exactly the fitted layout (flat
    ``(n, n_features_in_)`` or channels-last ``(n, *input_shape_)``) skips
    the generic checks, which cost 110-170 us, ten times the network's own
    forward pass on one digits sample. Anything else (and any value out of
    range, for its error message) takes the full path. Such an ``X`` is never
    a list of image files, so a face may ask this first.
    """
    if type(X) is not np.ndarray or X.dtype is not _FLOAT32 or not X.flags.c_contiguous:
        return None
    shape = X.shape
    fitted = estimator.__dict__.get("input_shape_")
    if fitted is None or not shape or shape[0] == 0 or hasattr(estimator, "feature_names_in_"):
        return None
    channels_last = _data_format(estimator, reset=False) == "channels_last"   # the fitted layout
    if len(shape) == 4:
        if not channels_last or shape[1:] != tuple(fitted):
            return None
        images = X
    elif len(shape) == 2 and shape[1] == estimator.n_features_in_ and (channels_last or fitted[2] == 1):
        images = X.reshape(shape[0], *fitted)
    else:
        return None
    return images if _within_max_abs(X) else None


def _within_max_abs(X):
    """True when every value of C-contiguous float32 ``X`` is finite and at most :data:`MAX_ABS` in magnitude.

    Up to 8192 values (one-sample and small-batch predictions; OpenBLAS runs such a dot product on one thread)
    the float32 sum of squares decides in one ``sdot`` (``np.vdot``, ~0.5 us here against ~1-3 us for a
    float64 copy and its dot, or ~3 us for ``abs().max()``): every rounding of a sum of non-negative terms is
    monotone, so the sum is at least the rounded square of each value, and a value above MAX_ABS squares to
    infinity in float32 (:data:`_SQUARES_LIMIT`); NaN stays NaN. A sum that overflows although every value is
    in range sends ``X`` to the full checks, which accept it. ``np.vdot`` leaves the floating-point flags
    unread (``ndarray.dot`` would warn of the overflow; ``np.errstate`` costs more than the dot):
    ``tests/test_predict_fast_path.py`` checks that no warning escapes. Larger ``X``: its maximum and minimum
    (two passes without a temporary, ~1.5x faster than ``abs().max()``).
    """
    if X.size <= 8192:
        checks = compiled_checks()
        within = checks.float32_within(X, MAX_ABS) if checks is not None else None   # exactly _check_values's test
        if within is not None:
            return within
        return np.vdot(X, X) <= _SQUARES_LIMIT   # False for NaN too
    return float(X.max()) <= MAX_ABS and float(X.min()) >= -MAX_ABS   # False for NaN too


def _reshape_hint(ndim):
    """How to reshape ``X`` with ``ndim`` dimensions (not 2 to 4) into samples."""
    if ndim < 2:
        return "Reshape your data: X.reshape(1, -1) for a single sample, X.reshape(-1, 1) for a single feature."
    return (f"X has {ndim} axes: merge or drop the extra ones, e.g. X.reshape(-1, *X.shape[-3:]) for a stack of "
            f"image batches, or X.squeeze() for axes of length 1.")


def _single_image_hint(model, shape, data_format):
    """The advice for X that is one image of the fitted shape without the batch axis (or an empty string)."""
    fitted = tuple(model.input_shape_)
    singles = {_user_order(fitted, data_format)}
    if fitted[2] == 1:
        singles.add(fitted[:2])
    if tuple(shape) in singles:
        return (f" X looks like one image of the fitted shape without the batch axis: pass X[None] "
                f"(shape {(1, *shape)}) to predict one image.")
    return ""


def _prediction_images(model, X):
    """The prediction path of :func:`prepare_X` (no scikit-learn): X checked against the fitted model."""
    ready = already_prepared(model, X)
    if ready is not None:
        return ready
    data_format = _data_format(model, reset=False)
    _check_kind(X)
    model._check_feature_names_in(X)
    X = _as_array(X)
    _check_kind(X)
    try:
        array = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X cannot be read as a numeric array: {exc} (received {describe(X)})") from None
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Expected numeric X; received {describe(X)} holding non-numbers ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"Expected numeric X; received {describe(array)}")
    if array.ndim not in (2, 3, 4):
        raise ValueError(f"Expected X with 2 to 4 dimensions ((n, n_features), (n, height, width) or 4-D images "
                         f"in data_format); received {describe(X)}. {_reshape_hint(array.ndim)}"
                         f"{_single_image_hint(model, array.shape, data_format) if array.ndim < 2 else ''}")
    if len(array) == 0:
        raise ValueError(f"X has 0 samples; at least 1 is required: received {describe(X)}")
    _check_image_shape(array.shape[1:], X)
    with np.errstate(over="ignore"):
        values = np.ascontiguousarray(array, dtype=np.float32)
    _check_values(values, X)
    name = _model_name(model)
    if values.ndim == 2:
        if values.shape[1] != model.n_features_in_:
            raise ValueError(f"X has {values.shape[1]} features, but {name} is expecting {model.n_features_in_} "
                             f"features as input (received {describe(X)}, read as {values.shape[0]} flat samples)."
                             f"{_single_image_hint(model, values.shape, data_format)}")
        return _flat_to_nhwc(values, model.input_shape_, data_format)
    if values.ndim == 3:
        images = values[..., np.newaxis]
    elif data_format == "channels_first":
        images = np.ascontiguousarray(values.transpose(0, 2, 3, 1))
    else:
        images = values
    if images.shape[1:] != tuple(model.input_shape_):
        hint = _single_image_hint(model, values.shape, data_format)
        other = "channels_first" if data_format == "channels_last" else "channels_last"
        if values.ndim == 4 and _user_order(model.input_shape_, other) == values.shape[1:]:
            hint = (f" X looks like {other} images of the fitted shape: transpose it to {data_format!r} "
                    f"({'X.transpose(0, 2, 3, 1)' if other == 'channels_first' else 'X.transpose(0, 3, 1, 2)'}).")
        n_features = math.prod(images.shape[1:])
        if n_features != model.n_features_in_:
            raise ValueError(f"X has {n_features} features, but {name} is expecting {model.n_features_in_} "
                             f"features as input: X holds images of shape (height, width, channels)="
                             f"{images.shape[1:]}, the fitted model expects {tuple(model.input_shape_)} "
                             f"(data_format={data_format!r}; received {describe(X)}).{hint}")
        raise ValueError(f"X holds images of shape (height, width, channels)={images.shape[1:]}, but the fitted "
                         f"model expects {tuple(model.input_shape_)} (data_format={data_format!r}; received "
                         f"{describe(X)}).{hint}")
    return images


def prepare_X(estimator, X, *, reset):
    """Validate ``X`` and return C-contiguous NHWC float32 images.

    With ``reset=True`` (fit) sets ``estimator.n_features_in_`` (and
    ``feature_names_in_`` for data frames) and ``estimator.input_shape_``,
    and warns about inputs that are probably a mistake; otherwise checks
    ``X`` against them without importing scikit-learn (``estimator`` may be a
    :class:`~minicnn.predictor.Predictor`), in the fitted ``data_format``.

    Raises
    ------
    ValueError
        Naming ``X`` and what was received: wrong number of dimensions, 0
        samples, a zero-sized image dimension, NaN, infinity or values above
        :data:`MAX_ABS`, a shape other than the fitted one (with a hint for
        a single image without the batch axis or the other layout).
    TypeError
        For sparse input.
    """
    if not reset:
        return _prediction_images(estimator, X)
    from sklearn.utils.validation import check_array, validate_data

    data_format = estimator.data_format
    _check_kind(X)
    X = _as_array(X)
    _check_kind(X)
    ndim = _ndim(X)
    if ndim is not None and ndim < 2:
        raise ValueError(f"Expected X with 2 to 4 dimensions ((n, n_features), (n, height, width) or 4-D images "
                         f"in data_format); received {describe(X)}. {_reshape_hint(ndim)}")
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) >= 1 and shape[0] == 0:
        raise ValueError(f"X has 0 samples; at least 1 is required: received {describe(X)}")
    if shape is not None and len(shape) > 2:
        _check_image_shape(shape[1:], X)
    if ndim is not None and ndim > 2:
        images = _validated(lambda: check_array(X, allow_nd=True, dtype=np.float32, order="C", input_name="X",
                                                estimator=estimator), X)
        if images.ndim > 4:
            raise ValueError(f"Expected X with 2 to 4 dimensions ((n, n_features), (n, height, width) or 4-D images "
                             f"in data_format); received {describe(X)}. {_reshape_hint(images.ndim)}")
        _check_image_shape(images.shape[1:], X)
        _check_values(images, X)
        _warn_layout(estimator, X, images, data_format)
        if images.ndim == 3:
            images = images[..., np.newaxis]
        elif data_format == "channels_first":
            images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
        validate_data(estimator, images.reshape(len(images), -1), reset=True, skip_check_array=True)
        shape = images.shape[1:]
        expected = user_shape_to_nhwc(estimator.input_shape, data_format)
        if expected is not None and tuple(expected) != shape:
            raise ValueError(f"X holds images of shape (height, width, channels)={shape}, but input_shape expects "
                             f"{tuple(expected)} (data_format={data_format!r})")
        estimator.input_shape_ = shape
        return images
    flat = _validated(lambda: validate_data(estimator, X, reset=True, dtype=np.float32, order="C"), X)
    _check_values(flat, X)
    _warn_layout(estimator, X, flat, data_format)
    nhwc = user_shape_to_nhwc(estimator.input_shape, data_format)
    estimator.input_shape_ = _shape_for_flat(flat.shape[1], nhwc, estimator.input_shape)
    if nhwc is None and estimator.input_shape_[0] == 1 and flat.shape[1] > 1:
        warn(f"X has {flat.shape[1]} features per sample, not a perfect square, and input_shape=None: each sample "
             f"is read as a 1 x {flat.shape[1]} single-channel strip. Pass input_shape=(height, width) or "
             f"(height, width, channels) if the rows are images, or input_shape=(1, {flat.shape[1]}) to "
             f"confirm a strip (tabular data; padding='same' keeps the layers valid).", UserWarning)
    return _flat_to_nhwc(flat, estimator.input_shape_, data_format)
