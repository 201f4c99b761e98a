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
times plus 1 MiB (so a small file cannot make ``load`` build a huge network), and
the activation memory one sample needs may be at most
:data:`MAX_ACTIVATION_EXPANSION` times the sample's bytes plus
:data:`ACTIVATION_SLACK_BYTES` (so a small file cannot make ``predict``
allocate without bound). Only regular files are read (a FIFO or a device such
as ``/dev/zero`` has no size to bound the reading).

Adam/SGD moments are not saved: a loaded estimator predicts identically;
further ``partial_fit`` or warm-started ``fit`` calls start a fresh optimizer.
"""

import errno
import io
import json
import math
import numbers
import os
import stat
import struct
import zipfile
import zlib

import numpy as np

from .inputs import user_shape_to_nhwc
from .architecture import LAYER_KINDS, network_options, parse_layers, weight_count
from .layers.base import UNINITIALIZED
from .layers.geometry import window_geometry
from ._targets import restore_fitted as restore_targets
from .params import ADDED_PARAMS, DEFAULTS, invalid
from . import preprocessing

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
#: Cap of the activation memory one sample needs (estimated from the header, see :func:`activation_bytes`):
#: this many times the sample's own bytes, plus :data:`ACTIVATION_SLACK_BYTES`.
MAX_ACTIVATION_EXPANSION = 1024
ACTIVATION_SLACK_BYTES = 16 * 1024**2
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
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):   # JSON object keys are strings: keep the keys' types as [key, value] pairs
        return {"items": [[_jsonable(k), _jsonable(v)] for k, v in value.items()]}
    if isinstance(value, np.random.RandomState):
        return None   # a RandomState instance is not a value: saved as None
    raise ValueError(f"Cannot save parameter value {value!r} of type {type(value).__name__}")


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


def save(record, path, extra=None):
    """Write a model record (see :func:`minicnn._record.model_record`) to ``path`` atomically.

    ``record`` is a plain dict, made by the estimator from its fitted state:
    ``estimator`` (class name), ``params`` (constructor parameters of the
    fitted model), ``input_shape``, ``n_features_in``, ``n_outputs``,
    ``dtype``, ``fitted`` (the fitted attributes as JSON values), ``classes``
    (an array, classifiers only, else None) and ``layers``: one dict per
    network layer with ``type``, ``params`` and ``state`` (``{name: array}``)
    and, for dropout layers, ``seed``, ``layer_id`` and ``step``.

    The file is written as :func:`minicnn.files.atomic_write` writes every
    file: readers never see a partial file, a failed save leaves the old file
    whole and no temporary file, errors name ``path``. Otherwise ``save``
    behaves like ``open(path, "wb")``/``np.save``: ``path`` is used as given
    (no ``.npz`` suffix is added), a symbolic link is followed, a new file
    gets mode ``0o666 & ~umask``, an existing file keeps its mode, a FIFO,
    pipe or device (``/dev/stdout``) receives the complete file in place
    (never replaced); a hard-linked file is replaced under the name given
    (its other links keep the old model). ``path`` may be str, bytes or
    os.PathLike.

    Parameters
    ----------
    record : dict
    path : str, bytes or os.PathLike
    extra : dict of str to ndarray, optional
        More members to write (their names must not start with ``layer`` nor
        be ``header`` or ``classes``); :func:`read_model` reads them with its
        ``extra`` argument (a checkpoint, see :mod:`minicnn.checkpoint`).

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
        If the record holds something a model file cannot store, or an
        invalid parameter (checked against :mod:`minicnn.params` before
        anything is written, as :func:`read_model` checks it).

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
    >>> clf.save(path)
    >>> bool((minicnn.load(path).predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    name = record["estimator"]
    if name not in ESTIMATORS:
        raise ValueError(f"Expected a CNNClassifier or CNNRegressor; received {name}")
    for key, value in record["params"].items():   # before anything is written: load refuses what this refuses
        problem = invalid(key, value)
        if problem is not None:
            raise ValueError(f"Cannot save: the {key!r} parameter of {name} must be {problem}. Got {value!r} "
                             f"instead (set a valid value before saving; nothing was written)")
    problem = _activation_problem(parse_layers(record["params"]["layers"]), tuple(record["input_shape"]),
                                  record["params"])
    if problem is not None:   # load refuses it: nothing is written
        raise ValueError(f"Cannot save: the {name} is {problem}; a model file may not describe it (nothing was "
                         f"written)")
    if not all(math.isfinite(v) for v in record["fitted"]["loss_curve"]):
        raise ValueError(f"Cannot save a {name} whose loss_curve_ holds non-finite values")
    arrays, layers = {}, []
    for i, layer in enumerate(record["layers"]):
        entry = {"type": layer["type"],
                 "params": {k: list(v.shape) for k, v in sorted(layer["params"].items())},
                 "state": {k: list(v.shape) for k, v in sorted(layer["state"].items())}}
        for k, v in layer["params"].items():
            arrays[f"layer{i}.{k}"] = v
        for k, v in layer["state"].items():
            arrays[f"layer{i}.state.{k}"] = v
        entry.update({k: int(layer[k]) for k in ("seed", "layer_id", "step") if k in layer})
        layers.append(entry)
    header = {"format": FORMAT, "version": VERSION, "estimator": name,
              "params": {k: _jsonable(v) for k, v in record["params"].items()},
              "input_shape": [int(d) for d in record["input_shape"]],
              "n_features_in": int(record["n_features_in"]), "n_outputs": int(record["n_outputs"]),
              "dtype": str(record["dtype"]), "layers": layers, "fitted": record["fitted"]}
    if record.get("preprocessing") is not None:   # how image files were read (minicnn.preprocessing)
        header["preprocessing"] = record["preprocessing"]
    if record.get("data") is not None:   # the data 'minicnn fit' named (minicnn._record.DATA_KEYS)
        header["data"] = record["data"]
    if name == "CNNClassifier":
        typed, values = _classes_array(record["classes"])
        if values is None:
            arrays["classes"] = typed
            header["classes"] = {"dtype": typed.dtype.str, "object": False}
        else:
            header["classes"] = {"dtype": "|O", "object": True, "values": values}
    arrays["header"] = np.frombuffer(json.dumps(header, allow_nan=False).encode("utf-8"), dtype=np.uint8)
    arrays.update(extra or {})
    from .files import atomic_write   # here, not at the top: loading a model never writes (signal, tempfile)

    atomic_write(path, lambda f: _write_arrays(f, arrays))


def _write_arrays(f, arrays):
    """Write the members (an uncompressed ``.npz``, as ``np.savez``) to the open file ``f``.

    On any failure the archive is abandoned unfinished (the file is
    discarded): ``ZipFile.close`` would refuse while a member is open and hide
    the original error (a KeyboardInterrupt) behind its own.
    """
    archive = zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
    member = None
    try:
        for key, value in arrays.items():
            member = archive.open(f"{key}.npy", mode="w", force_zip64=True)
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
            member.close()
        archive.close()
    except BaseException:
        if member is not None:
            io.BufferedIOBase.close(member)   # closed without finishing the member (nothing more is written)
        archive.fp = None   # abandoned: neither close() nor the garbage collector writes or raises any more
        raise


# ---------------------------------------------------------------------------- loading


class ModelFileError(ValueError):
    """A file given to :func:`load` is not a valid minicnn model (malformed, truncated, hostile or inconsistent)."""


class _Reader:
    """Reads ``.npy`` members of a zip with their header checked before the data."""

    def __init__(self, archive, source, file=None):
        self.archive, self.source, self.file = archive, source, file   # file: the archive's, for direct reads
        self.names = set(archive.namelist())
        self.read = set()

    def fail(self, message):
        raise ModelFileError(f"{self.source} is not a valid minicnn model file: {message}")

    def array(self, key, shape=None, dtype=None, max_bytes=None, copy=True, into=None):
        """The checked array of member ``key``.

        ``copy=False``: a read-only view of the bytes read. ``into``: an array of ``shape`` and ``dtype`` the
        values are written to (and returned); a stored (uncompressed) member of a C-order array is read straight
        into it from the file, its CRC-32 checked as :mod:`zipfile` checks it: no intermediate copies of the
        weights (three 4.7 MB buffers for the MNIST model's dense layer).
        """
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
            except (ValueError, SyntaxError, TypeError, RecursionError) as exc:
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
            info, start = self.archive.getinfo(member), fp.tell()
            if (into is not None and self.file is not None and info.compress_type == zipfile.ZIP_STORED
                    and not fortran and into.flags.c_contiguous and into.flags.writeable):
                return self._read_stored(key, info, start, nbytes, into)
            data = fp.read(nbytes + 1)
        if into is not None:
            if len(data) == nbytes:
                into[...] = np.frombuffer(data, dtype=got_dtype).reshape(got_shape, order="F" if fortran else "C")
                return into
        if len(data) != nbytes:
            self.fail(f"array {key!r} is truncated or has trailing data ({len(data)} bytes, expected {nbytes})")
        values = np.frombuffer(data, dtype=got_dtype).reshape(got_shape, order="F" if fortran else "C")
        return values.copy() if copy else values

    def _read_stored(self, key, info, start, nbytes, into):
        """The data of stored member ``info`` (``start`` bytes of ``.npy`` header, then ``nbytes``) into ``into``."""
        f = self.file
        f.seek(info.header_offset)   # the local header (zipfile.open checked it): where the member's bytes start
        local = f.read(zipfile.sizeFileHeader)
        if len(local) != zipfile.sizeFileHeader:
            raise EOFError("the local file header is truncated")
        fields = struct.unpack(zipfile.structFileHeader, local)
        f.seek(info.header_offset + zipfile.sizeFileHeader + fields[zipfile._FH_FILENAME_LENGTH]
               + fields[zipfile._FH_EXTRA_FIELD_LENGTH])
        head = f.read(start)
        available = info.file_size - start
        if available != nbytes:
            self.fail(f"array {key!r} is truncated or has trailing data ({min(available, nbytes + 1)} bytes, "
                      f"expected {nbytes})")
        got = f.readinto(memoryview(into).cast("B")) if nbytes else 0
        if len(head) != start or got != nbytes:
            raise EOFError(f"member {info.filename!r} ends past the end of the file")
        if zlib.crc32(into, zlib.crc32(head)) != info.CRC:   # as ZipExtFile checks at the end of a member
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
        return into


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


def rng_state_problem(state):
    """None, or what keeps ``state`` from being a saved generator state (``Generator.bit_generator.state``).

    Checked without ``numpy.random`` (its import is ~7 ms of a cold start that never draws): the exact
    layout of a PCG64 state, the bit generator of ``np.random.default_rng`` that fit uses, with every
    integer in its range; at least as strict as PCG64's own ``state`` setter, which an estimator's load
    applies next.

    Examples
    --------
    >>> rng_state_problem({"bit_generator": "PCG64", "state": {"state": 3, "inc": 5}, "has_uint32": 0,
    ...                    "uinteger": 0}) is None
    True
    >>> rng_state_problem({"bit_generator": "MT19937"})
    "bit_generator 'MT19937' is not 'PCG64'"
    """
    if not isinstance(state, dict):
        return f"{type(state).__name__} is not a dict"
    if state.get("bit_generator") != "PCG64":
        return f"bit_generator {state.get('bit_generator')!r} is not 'PCG64'"
    if set(state) != {"bit_generator", "state", "has_uint32", "uinteger"}:
        return f"keys {sorted(state)} are not bit_generator, state, has_uint32 and uinteger"
    inner = state["state"]
    if not (isinstance(inner, dict) and set(inner) == {"state", "inc"}
            and all(_is_int(inner[k], 0, 2**128) for k in ("state", "inc"))):
        return f"state {inner!r:.80} is not {{'state': int, 'inc': int}} of 128-bit unsigned integers"
    if not (_is_int(state["has_uint32"], 0, 2) and _is_int(state["uinteger"], 0, 2**32)):
        return f"has_uint32={state['has_uint32']!r} or uinteger={state['uinteger']!r} is out of range"
    return None


def _restore_fitted(reader, est, header, restore_rng=True):
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
    state = fitted.get("rng_state")
    problem = rng_state_problem(state)
    _expect(reader, problem is None, f"rng_state is invalid ({problem})")
    if restore_rng:
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as exc:
            reader.fail(f"rng_state is invalid ({exc})")
        est._rng = rng
    est.input_shape_ = tuple(shape)
    est.n_features_in_ = header["n_features_in"]
    est.n_outputs_ = header["n_outputs"]
    if names is not None:
        est.feature_names_in_ = np.array(names, dtype=object)
    est.n_iter_, est.t_, est.loss_curve_ = fitted["n_iter"], fitted["t"], [float(v) for v in curve]
    est.validation_scores_ = None if scores is None else [float(v) for v in scores]
    est.best_loss_ = fitted["best_loss"]
    est.best_validation_score_ = fitted["best_validation_score"]
    if header["estimator"] == "CNNRegressor":
        est._y_ndim = fitted["y_ndim"]
        problem = restore_targets(est, fitted, header["n_outputs"])
        _expect(reader, problem is None, problem)


#: The members (name prefixes) that minicnn.checkpoint adds to a model file; read as a model, they are skipped.
CHECKPOINT_MEMBERS = ("checkpoint.npy", "optimizer.", "best.", "standardized.")


def _restore_data_record(reader, model, header):
    """The data record of a ``minicnn fit`` model (``_data_record``; files without one have none)."""
    if "data" in header:
        from ._data_record import data_record_problem

        bad = data_record_problem(header["data"])
        _expect(reader, bad is None, f"the data record is invalid ({bad})")
        model._data_record = dict(header["data"])


def _restore_preprocessing(reader, model, header):
    """The preprocessing record, when the file has one (files written before records existed have none)."""
    if "preprocessing" in header:
        bad = preprocessing.problem(header["preprocessing"], tuple(header["input_shape"]))
        _expect(reader, bad is None, f"the preprocessing record is invalid ({bad})")
        model.preprocessing_ = dict(header["preprocessing"])


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
    # each label above the one before: np.unique's check without np.unique, which imports numpy.ma (~10 ms of a
    # cold start); NaN compares False, so NaN labels are refused as before
    _expect(reader, bool(np.all(classes[1:] > classes[:-1])), "classes are not sorted and unique")
    est.classes_ = classes.astype(object) if info["object"] else classes


def activation_bytes(tokens, input_shape, *, kernel_size=3, padding="valid", pool_size=2, batch_norm=False,
                     itemsize=4, **_):
    """Estimated bytes one sample's forward pass needs, from the layer tokens (within a small factor, every backend).

    Every layer keeps its output (three buffers for a weighted layer with
    BatchNorm); the largest temporary of one layer comes on top: the padded
    input a conv or pooling window reads (twice for pooling: its windows),
    plus a conv's im2col rows. Used to refuse model files whose header
    describes a network that would allocate without bound per sample (e.g. a
    ``pool_size`` of 3000 with ``padding="same"`` on 8x8 images).

    Examples
    --------
    >>> from minicnn.architecture import parse_layers
    >>> activation_bytes(parse_layers(("conv4", "maxpool")), (8, 8, 1))
    2528
    """
    options = {"kernel_size": kernel_size, "padding": padding, "pool_size": pool_size, "activation": None,
               "batch_norm": batch_norm}
    shape = tuple(input_shape)
    kept, temporary = math.prod(shape), 0
    for token in tokens:
        kind = LAYER_KINDS[token.kind]
        out, _ = kind.shape(token, shape, options)
        if kind.input == kind.output == "map":
            h, w, c = shape
            k, stride = (token.kernel_size or kernel_size, 1) if kind.weighted else (pool_size, pool_size)
            (ho, pt, pb), (wo, pl, pr) = (window_geometry(h, k, stride, 1, padding),
                                          window_geometry(w, k, stride, 1, padding))
            padded = max(h + pt + pb, (ho - 1) * stride + k) * max(w + pl + pr, (wo - 1) * stride + k) * c
            temporary = max(temporary, padded + ho * wo * k * k * c if kind.weighted else 2 * padded)
        kept += math.prod(out) * (3 if kind.weighted and batch_norm else 1)
        shape = out
    return itemsize * (kept + temporary)


_ACTIVATION_OPTIONS = ("kernel_size", "padding", "pool_size", "batch_norm")


def _activation_problem(tokens, input_shape, options):
    """None, or what is wrong when one sample's activations exceed the cap (see :data:`MAX_ACTIVATION_EXPANSION`)."""
    needed = activation_bytes(tokens, input_shape, **{k: options[k] for k in _ACTIVATION_OPTIONS})
    sample = 4 * math.prod(input_shape)
    if needed <= MAX_ACTIVATION_EXPANSION * sample + ACTIVATION_SLACK_BYTES:
        return None
    return (f"a network whose forward pass needs about {needed} bytes per sample, more than the limit of "
            f"{MAX_ACTIVATION_EXPANSION} x the {sample} bytes of one input sample + {ACTIVATION_SLACK_BYTES} "
            f"(kernel_size={options['kernel_size']!r}, pool_size={options['pool_size']!r}, "
            f"padding={options['padding']!r} on input_shape {list(input_shape)})")


def _restore_network(reader, est, header, tokens, specs):
    _expect(reader, header["dtype"] == "float32", f"dtype {header['dtype']!r} is not float32")
    weights = weight_count(tokens, est.input_shape_, est.n_outputs_, **network_options(est))
    stored = sum(info.file_size for info in reader.archive.infolist() if info.filename.startswith("layer"))
    # Slack (MAX_EXPANSION x + 1 MiB) so that a mismatch of a few layers is reported layer by layer below.
    _expect(reader, 4 * weights <= MAX_EXPANSION * stored + 2**20,
            f"the parameters describe a network of {weights} weights ({4 * weights} bytes), far more than the "
            f"{stored} bytes of layer arrays the file stores")
    problem = _activation_problem(tokens, est.input_shape_, network_options(est))
    _expect(reader, problem is None, f"the parameters describe {problem}")
    network = est._new_network(tokens, specs, est.n_outputs_, UNINITIALIZED)   # every array is read below
    saved, layers = header["layers"], network.descendants()
    _expect(reader, len(saved) == len(layers),
            f"the header lists {len(saved)} layers, the parameters rebuild {len(layers)}")
    for i, (layer, entry) in enumerate(zip(layers, saved)):
        _expect(reader, isinstance(entry, dict) and entry.get("type") == type(layer).__name__,
                f"layer {i} is {entry.get('type') if isinstance(entry, dict) else entry!r}, the parameters "
                f"rebuild {type(layer).__name__}")
        for group, arrays in (("params", layer.params), ("state", getattr(layer, "state", {}))):
            declared = entry.get(group)
            expected = {k: list(v.shape) for k, v in arrays.items()}
            _expect(reader, declared == expected, f"layer {i} {group} are {declared!r}, expected {expected!r}")
            prefix = f"layer{i}." if group == "params" else f"layer{i}.state."
            for key, target in arrays.items():
                values = reader.array(prefix + key, shape=target.shape, dtype=target.dtype, into=target)
                _expect(reader, np.isfinite(values).all(), f"array {prefix + key!r} holds non-finite values")
                if key == "running_var":
                    _expect(reader, (values >= 0).all(), f"array {prefix + key!r} holds negative variances")
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


_FILE_KINDS = ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
               (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def _open_regular(source):
    """``open(source, "rb")`` for a regular file only: a FIFO, device or socket is refused unread.

    Opened without blocking (a FIFO with no writer would hang ``open``) and
    checked with ``fstat`` on the open descriptor: what is read is the file
    checked. Only a regular file has a size that bounds what is read.
    """
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", source)
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "special file")
            raise ModelFileError(f"{source} is not a valid minicnn model file: it is a {kind}, not a regular file "
                                 f"(a model is read only from a regular file, whose size bounds what is read; "
                                 f"copy the stream to a file first)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _out_of_memory(source, exc):
    """A MemoryError that says so: reading a file within the limits found the machine short of memory."""
    return MemoryError(f"out of memory while loading {source} (the file is within minicnn's limits; free memory "
                       f"or load it on a larger machine): {exc}")


def read_model(path, backend, make, extra=None, restore_rng=True):
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
    extra : callable, optional
        ``extra(reader, model)``, called last: reads the members ``save``
        wrote from its ``extra`` (``reader.array(key, ...)``).
    restore_rng : bool, default=True
        Give ``model`` the fit's generator as ``_rng`` (in its saved state: an
        estimator fits on from it). False: the saved state is checked all the
        same (:func:`rng_state_problem`) but no generator is made (a
        :class:`~minicnn.predictor.Predictor` never draws from it).

    Returns
    -------
    model, specs
        The filled ``model`` and its dropout specs.

    Raises
    ------
    ModelFileError
        (a ``ValueError``) If the file is not a zip, is truncated, has another
        format or version, declares more data than the limits allow (stored
        bytes, weights, or activation memory per sample: see
        :func:`activation_bytes`), or any field or array is missing,
        malformed or inconsistent with the network rebuilt from the saved
        parameters; or if ``path`` is not a regular file (a FIFO, a pipe, a
        device such as ``/dev/zero``: refused unread). Nothing in the file is
        executed.
    MemoryError
        If the machine runs out of memory reading a file within the limits
        (named as memory, never as a bad file).
    ValueError
        If ``backend`` is not None or a backend name (raised before the file
        is opened).
    OSError
        If ``path`` cannot be opened.
    """
    from .backend import BACKEND_NAMES
    from .backend.isa import CPULevelError

    if backend is not None and (not isinstance(backend, str) or backend not in BACKEND_NAMES):
        raise ValueError(f"backend must be None or one of {BACKEND_NAMES}; received backend={backend!r}")
    source = os.fspath(path)
    with _open_regular(source) as f:   # a missing or unreadable path raises OSError, as for any file
        disk_size = os.fstat(f.fileno()).st_size
        try:
            archive = zipfile.ZipFile(f)
        except MemoryError as exc:
            raise _out_of_memory(source, exc) from exc
        except Exception as exc:   # BadZipFile, EOFError, struct/overflow errors of a corrupted directory
            raise ModelFileError(f"{source} is not a valid minicnn model file: not a zip archive "
                                 f"({type(exc).__name__}: {exc})") from None
        with archive:
            reader = _Reader(archive, source, f)
            try:
                _check_directory(reader, disk_size)
                header = _read_header(reader)
                model, tokens, specs = make(reader, header, backend)
                _restore_fitted(reader, model, header, restore_rng)
                _restore_preprocessing(reader, model, header)
                _restore_data_record(reader, model, header)
                if header["estimator"] == "CNNClassifier":
                    _restore_classes(reader, model, header)
                model.network_ = _restore_network(reader, model, header, tokens, specs)
                if extra is not None:
                    extra(reader, model)
                elif "checkpoint.npy" in reader.names:   # a checkpoint read as the model of its last epoch
                    reader.read.update(n for n in reader.names if n.startswith(CHECKPOINT_MEMBERS))
            except (ModelFileError, CPULevelError):   # the file's fault, said; the environment's (MINICNN_CPU_LEVEL)
                raise
            except MemoryError as exc:   # the limits above hold: this is the machine's memory, not the file
                raise _out_of_memory(source, exc) from exc
            except Exception as exc:   # zlib/CRC errors, encrypted or unsupported members, anything malformed
                reader.fail(f"{type(exc).__name__}: {exc}")
            extra = reader.names - reader.read
            if extra:
                reader.fail(f"unexpected members {sorted(extra)}")
    return model, specs
