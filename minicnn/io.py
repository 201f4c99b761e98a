"""Safe persistence of fitted estimators: one ``.npz`` file, no pickle, every field checked on load.

File layout (a NumPy ``.npz`` zip of ``.npy`` members, written uncompressed):

``header``
    uint8 array holding UTF-8 JSON: ``{"format": "minicnn", "version": 1,
    "estimator": "CNNClassifier", "params": {...}, "input_shape": [h, w, c],
    "n_features_in": ..., "n_outputs": ..., "layers": [{"type": ..., "params":
    {name: shape}, "state": {name: shape}, "seed"/"layer_id"/"step" for
    dropout}, ...], "classes": {...}, "fitted": {...}}``.
``classes``
    The classifier's labels as a typed array (ints, floats, bools or
    unicode). Object-dtype labels (strings, Python scalars) have no member:
    the header's ``"classes": {"object": true, "values": [...]}`` holds them
    exactly (a ``U`` array would drop trailing NUL characters).
``layer<i>.<name>``, ``layer<i>.state.<name>``
    Parameters and BatchNorm running statistics of network layer ``i``.

:func:`load` never unpickles (object dtypes are refused), reads each member's
``.npy`` header first and checks its dtype and shape against the network
rebuilt from the saved parameters before reading any data, and raises
:class:`ModelFileError` (a ``ValueError``) for anything malformed, truncated,
of another format version or inconsistent.

Memory is bounded before anything is read: the zip directory's declared
uncompressed sizes are capped (:data:`MAX_MODEL_BYTES` in total, at most
:data:`MAX_EXPANSION` times the file's size on disk, so a zip bomb is refused
unread), encrypted members and unknown compression methods are refused, each
array must fit in its member, and the weights the saved parameters would
allocate may exceed what the file stores by at most :data:`MAX_EXPANSION`
times plus 1 MiB (so a small file cannot make ``load`` build a huge network).

Adam/SGD moments are not saved: a loaded estimator predicts identically;
further ``partial_fit`` or warm-started ``fit`` calls start a fresh optimizer.
"""

import json
import errno
import math
import numbers
import os
import stat
import tempfile
import zipfile

import numpy as np

from ._inputs import user_shape_to_nhwc
from ._targets import fitted_fields as target_fields, restore_fitted as restore_targets
from .architecture import network_options, weight_count
from .params import ADDED_PARAMS, DEFAULTS, invalid

FORMAT = "minicnn"
VERSION = 1
ESTIMATORS = ("CNNClassifier", "CNNRegressor")
MAX_HEADER_BYTES = 16 * 1024 * 1024
#: Cap of the total declared uncompressed size of a model file's members.
MAX_MODEL_BYTES = 4 * 1024**3
#: Cap of declared uncompressed size / size on disk (``save`` stores members uncompressed: ratio ~1).
MAX_EXPANSION = 16
#: Cap of the number of hidden-layer tokens in a loaded model.
MAX_LAYERS = 1000
_TUPLE_PARAMS = ("layers", "dropout", "dropout_rate", "input_shape", "augment")
_CLASS_KINDS = "biufU"


def _jsonable(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):   # JSON object keys are strings: keep the keys' types as [key, value] pairs
        return {"items": [[_jsonable(k), _jsonable(v)] for k, v in value.items()]}
    if isinstance(value, np.random.RandomState):
        return None   # a RandomState instance is not a value: saved as None
    raise ValueError(f"Cannot save parameter value {value!r} of type {type(value).__name__}")


def _fitted_fields(est):
    fields = {"n_iter": int(est.n_iter_), "t": int(est.t_), "loss_curve": [float(v) for v in est.loss_curve_],
              "best_loss": None if est.best_loss_ is None else float(est.best_loss_),
              "validation_scores": (None if est.validation_scores_ is None
                                    else [float(v) for v in est.validation_scores_]),
              "best_validation_score": (None if est.best_validation_score_ is None
                                        else float(est.best_validation_score_)),
              "feature_names_in": (None if not hasattr(est, "feature_names_in_")
                                   else [str(v) for v in est.feature_names_in_]),
              "y_ndim": int(getattr(est, "_y_ndim", 1)),
              "rng_state": est._rng.bit_generator.state, **target_fields(est)}
    if not all(math.isfinite(v) for v in fields["loss_curve"]):
        raise ValueError("Cannot save an estimator whose loss_curve_ holds non-finite values")
    return fields


def _class_value(c):
    """A Python str/bool/int/float for one object-dtype class label (exact in JSON), or raise ValueError."""
    if isinstance(c, str):
        return str(c)
    if isinstance(c, (bool, np.bool_)):
        return bool(c)
    if isinstance(c, numbers.Integral):
        return int(c)
    if isinstance(c, numbers.Real) and math.isfinite(c):
        return float(c)
    raise ValueError(f"Cannot save class label {c!r} of type {type(c).__name__}: a model file stores "
                     f"str, bool, int and finite float labels")


def _classes_array(classes):
    """``(array, values)``: typed labels as an array, object-dtype labels as exact JSON values.

    NumPy's ``U`` dtype drops trailing NUL characters (``'cat\\x00'`` would
    come back as ``'cat'``), so object labels (strings, or Python scalars) are
    written as a JSON list instead, which keeps every code point. Raises
    ValueError for labels a model file cannot store (the classifier's fit
    refuses them with this check).
    """
    if classes.dtype == object:
        return None, [_class_value(c) for c in classes]
    if classes.dtype.kind not in _CLASS_KINDS:
        raise ValueError(f"Cannot save classes_ of dtype {classes.dtype}: a model file stores bool, int, float "
                         f"and str labels")
    return classes, None


def save(estimator, path):
    """Write a fitted CNNClassifier or CNNRegressor to ``path`` (atomically).

    The file is written to a temporary file next to its target and moved
    over it with ``os.replace``, so readers never see a partial file and a
    failed save leaves the old file intact. Otherwise ``save`` behaves like
    ``open(path, "wb")``/``np.save``: ``path`` is used as given (no ``.npz``
    suffix is added), a symbolic link is followed (its target gets the new
    model, the link stays), a new file gets mode ``0o666 & ~umask``, an
    existing file keeps its mode, and a FIFO, pipe or device (``/dev/stdout``)
    receives the complete file in place (never replaced). ``path`` may be
    str, bytes or os.PathLike; errors name it, never a temporary file.

    Parameters
    ----------
    estimator : CNNClassifier or CNNRegressor
        A fitted estimator.
    path : str or os.PathLike

    Raises
    ------
    PermissionError
        If an existing file at ``path`` is read-only (its owner-write bit is
        clear, even for root) or cannot be opened for writing, or its
        directory is not writable.
    IsADirectoryError, NotADirectoryError, FileNotFoundError
        If ``path`` is a directory or ends in a separator, or its directory
        does not exist (as ``open(path, "wb")``).
    ValueError
        If the estimator holds something a model file cannot store, or a
        parameter set since the fit is invalid (checked against
        :mod:`minicnn.params` before anything is written, as :func:`load`
        checks it).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import minicnn
    >>> X = np.random.default_rng(0).random((20, 16), dtype=np.float32)
    >>> y = np.arange(20) % 2
    >>> clf = minicnn.CNNClassifier(layers=("conv2", "maxpool"), max_iter=1, backend="numpy",
    ...                             random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> save(clf, path)
    >>> bool((minicnn.load(path).predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    name = type(estimator).__name__
    if name not in ESTIMATORS:
        raise ValueError(f"Expected a CNNClassifier or CNNRegressor; received {name}")
    fitted_params = estimator._fitted_params()
    for key, value in fitted_params.items():   # before anything is written: load refuses what this refuses
        problem = invalid(key, value)
        if problem is not None:
            raise ValueError(f"Cannot save: the {key!r} parameter of {name} must be {problem}. Got {value!r} "
                             f"instead (set a valid value before saving; nothing was written)")
    network = estimator.network_
    arrays, layers = {}, []
    for i, layer in enumerate(network.layers):
        entry = {"type": type(layer).__name__,
                 "params": {k: list(v.shape) for k, v in sorted(layer.params.items())},
                 "state": {k: list(v.shape) for k, v in sorted(getattr(layer, "state", {}).items())}}
        for k, v in layer.params.items():
            arrays[f"layer{i}.{k}"] = v
        for k, v in getattr(layer, "state", {}).items():
            arrays[f"layer{i}.state.{k}"] = v
        if layer.stochastic:
            entry.update(seed=int(layer.seed), layer_id=int(layer.layer_id), step=int(layer.step))
        layers.append(entry)
    header = {"format": FORMAT, "version": VERSION, "estimator": name,
              "params": {k: _jsonable(v) for k, v in fitted_params.items()},
              "input_shape": [int(d) for d in estimator.input_shape_],
              "n_features_in": int(estimator.n_features_in_), "n_outputs": int(estimator.n_outputs_),
              "dtype": str(network.dtype), "layers": layers, "fitted": _fitted_fields(estimator)}
    if name == "CNNClassifier":
        typed, values = _classes_array(estimator.classes_)
        if values is None:
            arrays["classes"] = typed
            header["classes"] = {"dtype": typed.dtype.str, "object": False}
        else:
            header["classes"] = {"dtype": "|O", "object": True, "values": values}
    arrays["header"] = np.frombuffer(json.dumps(header, allow_nan=False).encode("utf-8"), dtype=np.uint8)
    _atomic_write(path, lambda f: _write_arrays(f, arrays))


def same_file(a, b):
    """True when paths ``a`` and ``b`` name one file (the same path after resolving links, or the same inode).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> same_file(path, os.path.join(os.path.dirname(path), ".", "m.npz"))
    True
    """
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _umask():
    """The process umask: from ``/proc/self/status`` where it exists (thread-safe), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _user_path(path):
    """``path`` (str, bytes or os.PathLike) as a str, decoded as the OS does: the name errors report."""
    return os.fsdecode(os.fspath(path))


def _naming(exc, path):
    """An ``OSError`` raised on a temporary file, raised again naming the user's ``path`` as ``open`` would."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return type(exc)(exc.errno, exc.strerror, path)
    return exc


def _writable_target(path):
    """The file ``open(path, "wb")`` would write, its mode, and its ``os.stat`` (None when new).

    Symbolic links are followed (a link keeps pointing at the new model), an
    existing file keeps its permission bits, a new file gets ``0o666 & ~umask``
    (as ``np.save``/``open``). An existing file that cannot be opened for
    writing, or whose owner-write bit is clear (read-only on purpose: refused
    also for root, who could write it), raises :class:`PermissionError`. A
    path ending in a separator raises what ``open`` raises for it
    (:class:`IsADirectoryError` or :class:`NotADirectoryError`). An existing
    file that is not a regular file (a FIFO, a character device such as
    ``/dev/stdout``) is returned as given, with mode None: it is written in
    place, as ``open`` would, never replaced. A missing directory raises
    :class:`FileNotFoundError` naming ``path``.
    """
    user = _user_path(path)
    if user.endswith(os.sep) or (os.altsep and user.endswith(os.altsep)):
        with open(user, "ab"):   # O_CREAT with a trailing separator never creates a file: this raises
            pass
        raise IsADirectoryError(errno.EISDIR, "Is a directory", user)   # pragma: no cover - open raised
    try:
        st = os.stat(user)   # follows links, also /proc/self/fd/N links to pipes that realpath cannot name
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        return user, None, st
    target = os.path.realpath(user)
    if st is None:
        directory = os.path.dirname(target) or "."
        if not os.path.isdir(directory):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", user)
        return target, 0o666 & ~_umask(), None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", user)
    if not st.st_mode & stat.S_IWUSR:
        raise PermissionError(errno.EACCES, f"Permission denied: the file is read-only "
                                            f"(mode {stat.S_IMODE(st.st_mode):04o})", user)
    os.close(os.open(target, os.O_WRONLY))   # raises PermissionError exactly where open(path, "wb") would
    return target, stat.S_IMODE(st.st_mode), st


class _Staged:
    """A complete new file for ``path``, written by ``write(file)`` but not yet in place.

    :meth:`commit` puts it in place (``os.replace`` of a temporary file next
    to the target, so readers never see a partial file and a failed write
    leaves the old file untouched), :meth:`discard` removes it. The result is
    what ``open(path, "wb")`` would give (see :func:`_writable_target`; an
    existing file also keeps its owner and group where the process may set
    them). Three cases cannot be replaced without changing what ``open``
    would do, and are written in place once the complete file exists: a file
    that is not a regular file (FIFO, device), a file with several hard links
    (every name sees the new model) and a writable file in a directory the
    process cannot create files in. Every ``OSError`` names ``path``, never
    the temporary file.
    """

    def __init__(self, path, write):
        self.path = _user_path(path)
        self.target, mode, st = _writable_target(path)
        directory = os.path.dirname(self.target)
        try:
            if mode is None:   # not a regular file: the complete content waits in an anonymous file
                anonymous, self.tmp = tempfile.TemporaryFile(), None
                fd = os.dup(anonymous.fileno())
                anonymous.close()
            else:
                try:
                    fd, self.tmp = tempfile.mkstemp(prefix=".minicnn-", suffix=".tmp", dir=directory)
                except PermissionError:
                    if st is None:
                        raise
                    fd, self.tmp = tempfile.mkstemp(prefix=".minicnn-", suffix=".tmp")   # complete copy elsewhere
        except OSError as exc:
            raise _naming(exc, self.path) from None
        self.in_place = mode is None or (st is not None and (st.st_nlink > 1 or os.path.dirname(self.tmp) != directory))
        self.file = os.fdopen(fd, "w+b")
        try:
            try:
                write(self.file)
                self.file.flush()
                if not self.in_place:
                    os.fchmod(self.file.fileno(), mode)
                    if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                        try:
                            os.fchown(self.file.fileno(), st.st_uid, st.st_gid)
                        except PermissionError:
                            pass
                    os.fsync(self.file.fileno())
            except OSError as exc:
                raise _naming(exc, self.path) from None
        except BaseException:
            self.discard()
            raise

    def commit(self):
        """Put the new file in place (then it is closed)."""
        try:
            if self.in_place:
                self.file.seek(0)
                with open(self.target, "r+b" if self.tmp is not None else "wb") as out:
                    while chunk := self.file.read(1 << 20):
                        out.write(chunk)
                    if self.tmp is not None:
                        out.truncate()
                        out.flush()
                        os.fsync(out.fileno())
                self.discard()
            else:
                self.file.close()
                os.replace(self.tmp, self.target)
        except OSError as exc:
            self.discard()
            raise _naming(exc, self.path) from None
        except BaseException:
            self.discard()
            raise

    def discard(self):
        """Remove the new file (the target is left as it was)."""
        self.file.close()
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass


def _atomic_write(path, write):
    """Call ``write(file)`` on a new file for ``path`` and put it in place (see :class:`_Staged`)."""
    _Staged(path, write).commit()


def _write_arrays(f, arrays):
    """Write the members (uncompressed ``.npz``) to the open file ``f``."""
    np.savez(f, **arrays)


# ---------------------------------------------------------------------------- loading


class ModelFileError(ValueError):
    """A file given to :func:`load` is not a valid minicnn model (malformed, truncated, hostile or inconsistent)."""


class _Reader:
    """Reads ``.npy`` members of a zip with their header checked before the data."""

    def __init__(self, archive, source):
        self.archive, self.source = archive, source
        self.names = set(archive.namelist())
        self.read = set()

    def fail(self, message):
        raise ModelFileError(f"{self.source} is not a valid minicnn model file: {message}")

    def array(self, key, shape=None, dtype=None, max_bytes=None):
        member = f"{key}.npy"
        if member not in self.names:
            self.fail(f"missing array {key!r}")
        self.read.add(member)
        with self.archive.open(member) as fp:
            try:
                major, _ = np.lib.format.read_magic(fp)
                reader = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
                if major not in reader:
                    self.fail(f"array {key!r} has unsupported .npy version {major}")
                got_shape, fortran, got_dtype = reader[major](fp)
            except ModelFileError:
                raise
            except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError) as exc:
                self.fail(f"array {key!r} has a malformed header ({type(exc).__name__}: {exc})")
            if not all(isinstance(d, int) and d >= 0 for d in got_shape):
                self.fail(f"array {key!r} has an invalid shape {got_shape!r}")
            if got_dtype.hasobject or got_dtype.fields is not None or got_dtype.subdtype is not None:
                self.fail(f"array {key!r} has dtype {got_dtype}; object and structured arrays are refused")
            if dtype is not None and got_dtype != np.dtype(dtype):
                self.fail(f"array {key!r} has dtype {got_dtype}, expected {np.dtype(dtype)}")
            if shape is not None and tuple(got_shape) != tuple(shape):
                self.fail(f"array {key!r} has shape {tuple(got_shape)}, expected {tuple(shape)}")
            nbytes = math.prod(got_shape) * got_dtype.itemsize
            if max_bytes is not None and nbytes > max_bytes:
                self.fail(f"array {key!r} declares {nbytes} bytes, more than the limit {max_bytes}")
            if nbytes > self.archive.getinfo(member).file_size:
                self.fail(f"array {key!r} declares {nbytes} bytes, more than its zip member holds "
                          f"({self.archive.getinfo(member).file_size} bytes)")
            data = fp.read(nbytes + 1)
        if len(data) != nbytes:
            self.fail(f"array {key!r} is truncated or has trailing data ({len(data)} bytes, expected {nbytes})")
        return np.frombuffer(data, dtype=got_dtype).reshape(got_shape, order="F" if fortran else "C").copy()


def _expect(reader, condition, message):
    if not condition:
        reader.fail(message)


def _is_int(value, low=None, high=None):
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok and (low is None or value >= low) and (high is None or value < high)


def _is_float_or_none(value):
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and math.isfinite(value))


def _read_header(reader):
    raw = reader.array("header", dtype=np.uint8, max_bytes=MAX_HEADER_BYTES)
    _expect(reader, raw.ndim == 1, "the header is not a 1-D uint8 array")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:   # bad UTF-8 or JSON, over-long int literals, deep nesting
        reader.fail(f"the header is not valid JSON ({type(exc).__name__}: {exc})")
    _expect(reader, isinstance(header, dict), "the header is not a JSON object")
    _expect(reader, header.get("format") == FORMAT, f"format is {header.get('format')!r}, expected {FORMAT!r}")
    _expect(reader, header.get("version") == VERSION,
            f"format version {header.get('version')!r} is not supported (this minicnn reads version {VERSION})")
    _expect(reader, header.get("estimator") in ESTIMATORS,
            f"estimator {header.get('estimator')!r} is not one of {ESTIMATORS}")
    required = {"params": dict, "input_shape": list, "n_features_in": int, "n_outputs": int, "dtype": str,
                "layers": list, "fitted": dict}
    for key, kind in required.items():
        _expect(reader, isinstance(header.get(key), kind), f"header field {key!r} is missing or not a {kind.__name__}")
    return header


def header_params(reader, header, expected, backend):
    """The saved constructor parameters: keys checked against ``expected``, JSON lists made tuples again."""
    params = dict(header["params"])
    for key in ADDED_PARAMS:   # files written before these parameters existed
        if key in expected:
            params.setdefault(key, DEFAULTS[key])
    for key, value in params.items():
        if isinstance(value, dict):
            items = value.get("items")
            _expect(reader, set(value) == {"items"} and isinstance(items, list) and all(
                isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], (str, int, float, bool))
                for kv in items), f"params {key} is not a saved dict")
            params[key] = {k: v for k, v in items}
    _expect(reader, set(params) == set(expected),
            f"params have keys {sorted(params)}, expected {sorted(expected)}")
    _expect(reader, not isinstance(params["layers"], list) or len(params["layers"]) <= MAX_LAYERS,
            f"params layers has {len(params['layers']) if isinstance(params['layers'], list) else 0} tokens, "
            f"more than the limit {MAX_LAYERS}")
    for key in _TUPLE_PARAMS:
        if isinstance(params[key], list):
            params[key] = tuple(params[key])
    if backend is not None:
        params["backend"] = backend
    return params


def _restore_fitted(reader, est, header):
    fitted = header["fitted"]
    shape = header["input_shape"]
    _expect(reader, len(shape) == 3 and all(_is_int(d, 1) for d in shape), f"input_shape {shape!r} is invalid")
    _expect(reader, _is_int(header["n_features_in"], 1) and header["n_features_in"] == math.prod(shape),
            f"n_features_in {header['n_features_in']!r} does not match input_shape {shape}")
    _expect(reader, _is_int(header["n_outputs"], 1), f"n_outputs {header['n_outputs']!r} is invalid")
    _expect(reader, _is_int(fitted.get("n_iter"), 0) and _is_int(fitted.get("t"), 0), "n_iter or t is invalid")
    curve = fitted.get("loss_curve")
    _expect(reader, isinstance(curve, list) and all(_is_float_or_none(v) and v is not None for v in curve),
            "loss_curve is invalid")
    scores = fitted.get("validation_scores")
    _expect(reader, scores is None or (isinstance(scores, list) and all(
        _is_float_or_none(v) and v is not None for v in scores)), "validation_scores is invalid")
    _expect(reader, _is_float_or_none(fitted.get("best_loss")) and _is_float_or_none(
        fitted.get("best_validation_score")), "best_loss or best_validation_score is invalid")
    _expect(reader, fitted.get("y_ndim") in (1, 2), "y_ndim is invalid")
    _expect(reader, header["n_outputs"] == 1 or fitted["y_ndim"] == 2 or header["estimator"] == "CNNClassifier",
            "y_ndim=1 with several outputs")
    names = fitted.get("feature_names_in")
    _expect(reader, names is None or (isinstance(names, list) and len(names) == header["n_features_in"]
                                      and all(isinstance(n, str) for n in names)), "feature_names_in is invalid")
    try:
        declared = user_shape_to_nhwc(est.input_shape, est.data_format)
    except ValueError as exc:
        reader.fail(f"invalid params ({exc})")
    _expect(reader, declared is None or list(declared) == shape,
            f"params input_shape={est.input_shape!r} does not match the fitted input_shape {shape}")
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = fitted.get("rng_state")
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as exc:
        reader.fail(f"rng_state is invalid ({exc})")
    est.input_shape_ = tuple(shape)
    est.n_features_in_ = header["n_features_in"]
    est.n_outputs_ = header["n_outputs"]
    if names is not None:
        est.feature_names_in_ = np.array(names, dtype=object)
    est.n_iter_, est.t_, est.loss_curve_ = fitted["n_iter"], fitted["t"], [float(v) for v in curve]
    est.validation_scores_ = None if scores is None else [float(v) for v in scores]
    est.best_loss_ = fitted["best_loss"]
    est.best_validation_score_ = fitted["best_validation_score"]
    est._rng = rng
    if header["estimator"] == "CNNRegressor":
        est._y_ndim = fitted["y_ndim"]
        problem = restore_targets(est, fitted, header["n_outputs"])
        _expect(reader, problem is None, problem)


def _restore_classes(reader, est, header):
    info = header.get("classes")
    _expect(reader, isinstance(info, dict) and isinstance(info.get("dtype"), str)
            and isinstance(info.get("object"), bool), "classes description is invalid")
    if "values" in info:   # object labels, stored exactly in the header
        values = info["values"]
        _expect(reader, info["object"] and isinstance(values, list) and len(values) == est.n_outputs_
                and all(isinstance(v, (str, bool, int)) or _is_float_or_none(v) and v is not None
                        for v in values),
                f"classes values are invalid (expected {est.n_outputs_} str, bool, int or float labels)")
        classes = np.empty(len(values), dtype=object)
        classes[:] = values
        try:
            unique = np.unique(classes)
        except TypeError as exc:
            reader.fail(f"classes values cannot be ordered ({exc})")
        _expect(reader, len(unique) == len(classes) and all(a is b or a == b for a, b in zip(unique, classes)),
                "classes are not sorted and unique")
        est.classes_ = classes
        return
    try:
        dtype = np.dtype(info["dtype"])
    except (TypeError, ValueError, OverflowError, SyntaxError, RecursionError) as exc:
        reader.fail(f"classes dtype {info['dtype']!r} is invalid ({type(exc).__name__})")
    _expect(reader, dtype.kind in _CLASS_KINDS, f"classes dtype {dtype} is not allowed")
    classes = reader.array("classes", shape=(est.n_outputs_,), dtype=dtype)
    _expect(reader, np.array_equal(np.unique(classes), classes), "classes are not sorted and unique")
    est.classes_ = classes.astype(object) if info["object"] else classes


def _restore_network(reader, est, header, tokens, specs):
    _expect(reader, header["dtype"] == "float32", f"dtype {header['dtype']!r} is not float32")
    weights = weight_count(tokens, est.input_shape_, est.n_outputs_, **network_options(est))
    stored = sum(info.file_size for info in reader.archive.infolist() if info.filename.startswith("layer"))
    # Slack (MAX_EXPANSION x + 1 MiB) so that a mismatch of a few layers is reported layer by layer below.
    _expect(reader, 4 * weights <= MAX_EXPANSION * stored + 2**20,
            f"the parameters describe a network of {weights} weights ({4 * weights} bytes), far more than the "
            f"{stored} bytes of layer arrays the file stores")
    network = est._new_network(tokens, specs, est.n_outputs_, np.random.default_rng(0))
    saved = header["layers"]
    _expect(reader, len(saved) == len(network.layers),
            f"the header lists {len(saved)} layers, the parameters rebuild {len(network.layers)}")
    for i, (layer, entry) in enumerate(zip(network.layers, saved)):
        _expect(reader, isinstance(entry, dict) and entry.get("type") == type(layer).__name__,
                f"layer {i} is {entry.get('type') if isinstance(entry, dict) else entry!r}, the parameters "
                f"rebuild {type(layer).__name__}")
        for group, arrays in (("params", layer.params), ("state", getattr(layer, "state", {}))):
            declared = entry.get(group)
            expected = {k: list(v.shape) for k, v in arrays.items()}
            _expect(reader, declared == expected, f"layer {i} {group} are {declared!r}, expected {expected!r}")
            prefix = f"layer{i}." if group == "params" else f"layer{i}.state."
            for key, target in arrays.items():
                values = reader.array(prefix + key, shape=target.shape, dtype=target.dtype)
                _expect(reader, np.isfinite(values).all(), f"array {prefix + key!r} holds non-finite values")
                if key == "running_var":
                    _expect(reader, (values >= 0).all(), f"array {prefix + key!r} holds negative variances")
                target[...] = values
        if layer.stochastic:
            ok = (_is_int(entry.get("seed"), 0, 2**63) and entry.get("layer_id") == i
                  and _is_int(entry.get("step"), 0, 2**62))
            _expect(reader, ok, f"dropout layer {i} has invalid seed, layer_id or step")
            layer.seed, layer.layer_id, layer.step = entry["seed"], entry["layer_id"], entry["step"]
    return network


def _check_directory(reader, disk_size):
    """Refuse, before reading any member: duplicates, encryption, unknown compression, oversized declarations."""
    infos = reader.archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        reader.fail("the zip directory lists a member name twice")
    for info in infos:
        if info.flag_bits & 0x1:
            reader.fail(f"member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            reader.fail(f"member {info.filename!r} uses unsupported compression method {info.compress_type}")
    declared = sum(info.file_size for info in infos)
    limit = min(MAX_MODEL_BYTES, MAX_EXPANSION * disk_size)
    if declared > limit:
        reader.fail(f"the zip directory declares {declared} uncompressed bytes, more than the limit {limit} "
                    f"(min of {MAX_MODEL_BYTES} and {MAX_EXPANSION} x the {disk_size} bytes on disk): "
                    f"refused unread (zip bomb?)")


def read_model(path, backend, make):
    """Read and check a model file; each face (estimator, Predictor) builds its own object with ``make``.

    Parameters
    ----------
    path : str or os.PathLike
    backend : {"auto", "numpy", "numba", "cython"} or None
        Passed to ``make`` (None keeps the saved ``backend`` parameter).
    make : callable
        ``make(reader, header, backend) -> (model, tokens, specs)``: builds the
        object from the checked header (:func:`header_params` gives its
        constructor parameters) and calls ``reader.fail(message)`` for
        invalid ones. ``model`` then gets the fitted attributes, ``classes_``
        (classifiers) and ``network_``.

    Returns
    -------
    model, specs
        The filled ``model`` and its dropout specs.

    Raises
    ------
    ModelFileError
        (a ``ValueError``) If the file is not a zip, is truncated, has another
        format or version, declares more data than the limits allow, or any
        field or array is missing, malformed or inconsistent with the network
        rebuilt from the saved parameters. Nothing in the file is executed.
    ValueError
        If ``backend`` is not None or a backend name (raised before the file
        is opened).
    OSError
        If ``path`` cannot be opened.
    """
    from .backend import BACKEND_NAMES

    if backend is not None and (not isinstance(backend, str) or backend not in BACKEND_NAMES):
        raise ValueError(f"backend must be None or one of {BACKEND_NAMES}; received backend={backend!r}")
    source = os.fspath(path)
    with open(source, "rb") as f:   # a missing or unreadable path raises OSError, as for any file
        disk_size = os.fstat(f.fileno()).st_size
        try:
            archive = zipfile.ZipFile(f)
        except Exception as exc:   # BadZipFile, EOFError, struct/overflow errors of a corrupted directory
            raise ModelFileError(f"{source} is not a valid minicnn model file: not a zip archive "
                                 f"({type(exc).__name__}: {exc})") from None
        with archive:
            reader = _Reader(archive, source)
            try:
                _check_directory(reader, disk_size)
                header = _read_header(reader)
                model, tokens, specs = make(reader, header, backend)
                _restore_fitted(reader, model, header)
                if header["estimator"] == "CNNClassifier":
                    _restore_classes(reader, model, header)
                model.network_ = _restore_network(reader, model, header, tokens, specs)
            except ModelFileError:
                raise
            except Exception as exc:   # zlib/CRC errors, encrypted or unsupported members, anything malformed
                reader.fail(f"{type(exc).__name__}: {exc}")
            extra = reader.names - reader.read
            if extra:
                reader.fail(f"unexpected members {sorted(extra)}")
    return model, specs


_load_file = read_model   # the name the Predictor used


def __getattr__(name):
    # ``minicnn.io.load`` moved next to the estimators (persistence knows no estimator): a deprecated alias.
    if name == "load":
        import warnings

        from .estimator import load

        warnings.warn("minicnn.io.load moved to minicnn.load (minicnn.estimator.load); the old name will be "
                      "removed in the next release", DeprecationWarning, stacklevel=2)
        return load
    raise AttributeError(f"module 'minicnn.io' has no attribute {name!r}")
