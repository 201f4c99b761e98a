"""Checkpoints of a running ``fit``: resume after a crash or a kill with the weights of an uninterrupted fit.

With ``checkpoint_path`` set, ``fit`` writes one file at the end of every
epoch: the model file of :func:`minicnn.io.save` (atomic: a temporary file
moved over the old one, so a kill at any moment leaves the previous complete
checkpoint) with these members added:

``checkpoint``
    uint8 UTF-8 JSON: ``{"format": "minicnn-checkpoint", "version": 1,
    "fingerprint": ..., "seed": [4 ints], "lr_state": {...}, "loop": {...},
    "optimizer": {...}, "validation_loss_curve": [...] or null}``.
``optimizer.<i>.<j>``
    Part ``j`` of the optimizer state of parameter group ``i`` (Adam's two
    moments, SGD's velocity).
``best.<i>``
    The best weights seen so far (early stopping), in :meth:`_snapshot` order.
``standardized.w``, ``standardized.b``
    A regressor's output layer in standardized target units (what training
    continues from, see :mod:`minicnn._targets`). The model part holds the
    output layer folded into ``y``'s units, as a finished model file does, so
    :func:`minicnn.load`, :func:`minicnn.load_predictor` and ``minicnn
    predict`` read a checkpoint as the model of its last epoch, in the units
    of ``y`` (they skip the members above: :data:`minicnn.io.CHECKPOINT_MEMBERS`).

The fingerprint is a SHA-256 of the prepared ``X``, ``y``, sample weights,
class labels, every parameter except ``verbose``, ``n_threads`` and
``checkpoint_path``, and, for a ``warm_start`` fit continuing a fitted model,
of the starting weights and optimizer state. A ``fit`` finding a checkpoint
with its fingerprint resumes from it (seed of the fit, weights, BatchNorm
statistics, dropout steps, optimizer, schedule, random generator, early
stopping counters and best weights, curves), so it runs the remaining epochs
exactly as the uninterrupted fit would have. Nothing is unpickled, and every
field is checked (types, ranges, agreement with the model read from the same
file: :func:`field_problem`) before anything is restored.
"""

import hashlib
import json
import os
import stat
import tempfile

import numpy as np

FORMAT = "minicnn-checkpoint"
VERSION = 1
#: Parameters that do not change what a fit computes (bit for bit): left out of the fingerprint.
NOT_FINGERPRINTED = ("verbose", "n_threads", "checkpoint_path")


def _fail(path, message):
    return ValueError(f"checkpoint_path={os.fsdecode(os.fspath(path))!r}: {message}")


def check_path(path, others=()):
    """Raise ValueError naming ``checkpoint_path`` when ``path`` cannot receive a checkpoint (before training).

    Refused: a path with a NUL character, a directory (or a path ending in a
    separator), a missing parent directory, a directory that is read-only
    (no owner-write bit, refused also for root) or where a file cannot be
    created, an existing read-only file, and one of the files ``others``
    (``(option, path)`` pairs: the model file a command writes, its input
    files), under any name (a link, ``./``).
    """
    from .files import same_file

    user = os.fsdecode(os.fspath(path))
    if "\0" in user:
        raise _fail(path, "holds a NUL character (not a valid file name)")
    for option, other in others:
        if other is not None and same_file(user, other):
            raise _fail(path, f"is the same file as {option} {os.fsdecode(os.fspath(other))}: the checkpoint and that "
                              f"file would overwrite each other; give the checkpoint its own path")
    if user.endswith(os.sep) or os.path.isdir(user):
        raise _fail(path, "is a directory; give a file path, e.g. 'fit.ckpt.npz'")
    directory = os.path.dirname(os.path.realpath(user)) or "."
    if not os.path.isdir(directory):
        raise _fail(path, f"its directory {directory!r} does not exist (nothing was trained)")
    if not os.stat(directory).st_mode & stat.S_IWUSR:
        raise _fail(path, f"its directory {directory!r} is read-only (nothing was trained)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".minicnn-", suffix=".tmp", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _fail(path, f"cannot create a file in its directory {directory!r} ({exc.strerror}; nothing was "
                          f"trained)") from None
    if os.path.exists(user):
        st = os.stat(user)
        if not stat.S_ISREG(st.st_mode):
            raise _fail(path, "is not a regular file")
        if not st.st_mode & stat.S_IWUSR:
            raise _fail(path, f"the file is read-only (mode {stat.S_IMODE(st.st_mode):04o}; nothing was trained)")


def _hash_array(h, name, array):
    array = np.ascontiguousarray(array)
    h.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
    h.update(array.tobytes())


def fingerprint(est, images, targets, weights, start=None):
    """SHA-256 (hex) of what decides a fit's result: data, parameters and, for a continuation, its start.

    Parameters
    ----------
    est : CNNClassifier or CNNRegressor
    images, targets : ndarray
        The prepared inputs and encoded targets.
    weights : ndarray or None
        The per-sample loss weights (``sample_weight`` times ``class_weight``).
    start : list of ndarray or None
        For a fit continuing a fitted model: its weights, statistics and optimizer state.
    """
    from .io import _jsonable

    h = hashlib.sha256()
    params = {}
    for name, value in sorted(est.get_params(deep=False).items()):
        if name in NOT_FINGERPRINTED:
            continue
        if isinstance(value, np.random.RandomState):
            _hash_array(h, "random_state", value.get_state()[1])
            value = "RandomState"
        params[name] = _jsonable(value)
    h.update(json.dumps([type(est).__name__, params], sort_keys=True).encode())
    _hash_array(h, "X", images)
    _hash_array(h, "y", targets)
    if weights is not None:
        _hash_array(h, "sample_weight", weights)
    classes = getattr(est, "classes_", None)
    if classes is not None:
        h.update(repr([(type(c).__name__, c) for c in classes.tolist()]).encode())
    for i, array in enumerate(start or ()):
        _hash_array(h, f"start{i}", array)
    return h.hexdigest()


def _optimizer_arrays(optimizer):
    """``(description, arrays)`` of an optimizer's state (its parameter groups and their parts)."""
    state = optimizer.state
    info = {"kind": type(optimizer).__name__, "iterations": int(optimizer.iterations), "parts": None}
    arrays = {}
    if state is not None:
        info["parts"] = [None if st is None else (len(st) if isinstance(st, tuple) else 0) for st in state]
        for i, st in enumerate(state):
            for j, part in enumerate(st if isinstance(st, tuple) else (() if st is None else (st,))):
                arrays[f"optimizer.{i}.{j}"] = part
    return info, arrays


def _start_state(est):
    """What a continuing fit starts from (hashed into its fingerprint)."""
    arrays = list(est._snapshot()[1])
    optimizer = getattr(est, "_optimizer", None)   # a loaded model has none: its next fit starts a fresh one
    iterations = -1
    if optimizer is not None:
        info, state = _optimizer_arrays(optimizer)
        arrays += list(state.values())
        iterations = info["iterations"]
    arrays.append(np.array([est.n_iter_, iterations], dtype=np.int64))
    return arrays


def _finite(value, low=None):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    return ok and (low is None or value > low)


def field_problem(fields, est, model, start_iter):
    """What is wrong with the checkpoint fields (a sentence), or None: types, ranges and agreement with the model.

    ``model`` is the estimator read from the same file, ``start_iter`` the
    ``n_iter_`` the resuming fit starts from.
    """
    from .io import _is_int

    seed, lr, loop, opt, curve = (fields.get(k) for k in ("seed", "lr_state", "loop", "optimizer",
                                                          "validation_loss_curve"))
    if not (isinstance(seed, list) and len(seed) == 4 and all(_is_int(v, 0, 2**32) for v in seed)):
        return f"seed must be 4 ints in [0, 2**32), found {seed!r}"[:200]
    if not (isinstance(loop, dict) and isinstance(lr, dict) and isinstance(opt, dict)):
        return "loop, lr_state and optimizer must be objects"
    completed = loop.get("completed")
    if not _is_int(completed, 0, est.max_iter + 1) or model.n_iter_ != start_iter + completed:
        return (f"loop.completed={completed!r} does not fit max_iter={est.max_iter} and the model's "
                f"n_iter_={model.n_iter_} (the fit started at n_iter_={start_iter})")
    if not (_is_int(loop.get("no_improvement"), 0, completed + 1) and isinstance(loop.get("finished"), bool)
            and isinstance(loop.get("best"), bool) and (loop.get("start") is None or _finite(loop["start"]))):
        return f"loop holds invalid values: {loop!r}"[:300]
    if not (lr.get("schedule") == est.lr_schedule and lr.get("max_iter") == est.max_iter
            and lr.get("epoch") == completed and _is_int(lr.get("stalled"), 0, completed + 1)
            and _finite(lr.get("adaptive"), 0.0) and lr["adaptive"] <= 1):
        return f"lr_state does not match the fit (schedule {est.lr_schedule!r}, {completed} epochs): {lr!r}"[:300]
    parts = opt.get("parts")
    parts_ok = parts is None or (isinstance(parts, list) and all(n is None or _is_int(n, 0, 3) for n in parts))
    if not ("parts" in opt and _is_int(opt.get("iterations"), 0) and parts_ok):
        return f"optimizer holds invalid values: {opt!r}"[:300]
    scores = model.validation_scores_
    if scores is None:
        ok = curve is None
    else:
        ok = isinstance(curve, list) and len(curve) == len(scores) and all(v is None or _finite(v) for v in curve)
    if not ok:
        return (f"validation_loss_curve must be null or one finite number (or null) per validation score "
                f"({None if scores is None else len(scores)}), found {curve!r}")[:300]
    return None


class Checkpoint:
    """The checkpoint of one ``fit`` call: resumes from the file when it matches, writes it every epoch.

    Built by :func:`prepare`; ``seed`` is the seed words of a resumed fit
    (None for a new one, which then sets it).
    """

    def __init__(self, path, fingerprint, start_iter=0):
        self.path, self.fingerprint, self.start_iter = path, fingerprint, start_iter
        self.seed = None
        self.resumed = None   # the loaded estimator and its checkpoint fields

    # ------------------------------------------------------------------ writing
    def write(self, est, rng, *, best, no_improvement, completed, start, finished):
        """Write the state at the end of an epoch (or of the fit, ``finished=True``) to ``path``, atomically."""
        from ._record import model_record
        from .io import save

        info, arrays = _optimizer_arrays(est._optimizer)
        lr = est._lr_state
        fields = {"format": FORMAT, "version": VERSION, "fingerprint": self.fingerprint,
                  "seed": [int(s) for s in self.seed],
                  "lr_state": {"schedule": lr.schedule, "max_iter": int(lr.max_iter), "epoch": int(lr.epoch),
                               "stalled": int(lr._stalled), "adaptive": float(lr._adaptive)},
                  "loop": {"no_improvement": int(no_improvement), "completed": int(completed),
                           "start": None if start is None else float(start), "finished": bool(finished),
                           "best": best is not None},
                  "optimizer": info,
                  "validation_loss_curve": (None if est.validation_loss_curve_ is None else [
                      float(v) if np.isfinite(v) else None for v in est.validation_loss_curve_])}
        if best is not None:
            arrays.update({f"best.{i}": a for i, a in enumerate(best[1])})
        arrays["checkpoint"] = np.frombuffer(json.dumps(fields, allow_nan=False).encode("utf-8"), dtype=np.uint8)
        from ._targets import in_target_units, output_layer

        if "_y_mean" in est.__dict__:   # a regressor: the standardized output layer, to continue from exactly
            layer = output_layer(est)
            arrays["standardized.w"], arrays["standardized.b"] = layer.params["w"].copy(), layer.params["b"].copy()
        try:
            with in_target_units(est):   # the model part predicts in y's units, as the final model file does
                save(model_record(est), self.path, extra=arrays)
        except OSError as exc:   # a full disk, a deleted directory ...: the same error, saying whose file it is
            when = "the finished fit" if finished else f"epoch {est.n_iter_}"
            raise type(exc)(exc.errno, f"checkpoint_path={os.fsdecode(os.fspath(self.path))!r}: cannot write the "
                                       f"checkpoint of {when} ({exc.strerror}; the previous checkpoint, if any, is "
                                       f"left whole)", exc.filename) from exc

    # ------------------------------------------------------------------ resuming
    def _read(self, est):
        """Read and check the file: the loaded estimator and the checkpoint fields, or ValueError naming the path."""
        from .io import ModelFileError, read_model

        found = {}

        def make(reader, header, backend):
            if header["estimator"] != type(est).__name__:
                reader.fail(f"it holds a {header['estimator']}, not a {type(est).__name__}")
            return type(est)._from_header(reader, header, backend)

        def extra(reader, model):
            raw = reader.array("checkpoint", dtype=np.uint8, max_bytes=1 << 24)
            try:
                fields = json.loads(raw.tobytes().decode("utf-8"))
            except ValueError as exc:
                reader.fail(f"the checkpoint fields are not valid JSON ({exc})")
            if not isinstance(fields, dict) or fields.get("format") != FORMAT:
                reader.fail(f"not a checkpoint (format {fields.get('format') if isinstance(fields, dict) else None!r})")
            found["fields"] = fields
            if fields.get("version") != VERSION or fields.get("fingerprint") != self.fingerprint:
                found["newer"] = fields.get("version")
                reader.read.update(reader.names)   # refused below, with the reason
                return
            problem = field_problem(fields, est, model, self.start_iter)
            if problem is not None:
                reader.fail(f"invalid checkpoint fields: {problem}")
            parts = fields["optimizer"]["parts"]
            found["optimizer"] = None if parts is None else [
                None if n is None else tuple(reader.array(f"optimizer.{i}.{j}") for j in range(max(n, 1)))
                for i, n in enumerate(parts)]
            targets = model._snapshot()[0]
            found["standardized"] = None
            if "standardized.w.npy" in reader.names or "_y_mean" in model.__dict__:
                from ._targets import output_layer

                params = output_layer(model).params
                found["standardized"] = tuple(reader.array(f"standardized.{k}", shape=params[k].shape,
                                                           dtype=params[k].dtype) for k in ("w", "b"))
            found["best"] = ([reader.array(f"best.{i}", shape=t.shape, dtype=t.dtype) for i, t in enumerate(targets)]
                             if fields["loop"]["best"] else None)
            n_params = sum(p.size for p, _ in model.network_.params_and_grads())
            state = [st for st in found["optimizer"] or () if st is not None]
            for j in range(max((len(st) for st in state), default=0)):   # each part covers every parameter once
                part = [st[j] for st in state if j < len(st)]
                if sum(a.size for a in part) != n_params or any(a.dtype != targets[0].dtype for a in part):
                    reader.fail(f"the optimizer state does not match the network's {n_params} parameters")

        try:
            model, _ = read_model(self.path, None, make, extra=extra)
        except ModelFileError as exc:
            raise _fail(self.path, f"cannot resume from it: {exc}. Nothing was trained and the file is left as it "
                                   f"is: if it is a damaged checkpoint of this fit, delete it to start a new fit; "
                                   f"otherwise set another checkpoint_path") from None
        if found.get("newer", VERSION) != VERSION:
            raise _fail(self.path, f"the checkpoint has format version {found['newer']!r}; this minicnn reads "
                                   f"version {VERSION}. Delete the file or set another checkpoint_path")
        if found["fields"].get("fingerprint") != self.fingerprint:
            raise _fail(self.path, f"the checkpoint was written by a fit of other data or parameters (its "
                                   f"fingerprint differs: X, y, sample_weight, classes, a parameter other than "
                                   f"{', '.join(NOT_FINGERPRINTED)}, or the starting model of a warm_start fit). "
                                   f"Nothing was trained; delete the file to start a new fit, or set another "
                                   f"checkpoint_path. A meta-estimator (GridSearchCV, cross_val_score) gives every "
                                   f"clone the same checkpoint_path, so each fit of other data or parameters meets "
                                   f"this file: there, set checkpoint_path=None")
        return model, found

    def restore(self, est, rng):
        """Put the resumed state into ``est`` (whose network was just built from the same seed) and ``rng``."""
        if self.resumed is None:
            return
        model, found = self.resumed
        fields = found["fields"]
        source, target = model._snapshot()[0], est._snapshot()[0]
        for t, s in zip(target, source):
            t[...] = s
        if found["standardized"] is not None:   # a regressor continues from its standardized output layer
            from ._targets import output_layer

            params = output_layer(est).params
            params["w"][...], params["b"][...] = found["standardized"]
        for mine, theirs in zip(est.network_.walk(), model.network_.walk()):
            if mine.stochastic:
                mine.step = theirs.step
        for name in ("n_iter_", "t_", "loss_curve_", "validation_scores_", "best_loss_", "best_validation_score_"):
            setattr(est, name, getattr(model, name))
        curve = fields["validation_loss_curve"]
        est.validation_loss_curve_ = None if curve is None else [np.nan if v is None else v for v in curve]
        rng.bit_generator.state = model._rng.bit_generator.state
        optimizer = fields["optimizer"]
        est._optimizer.iterations = optimizer["iterations"]
        est._optimizer.state = None if found["optimizer"] is None else [
            None if st is None else (st if n > 0 else st[0]) for st, n in zip(found["optimizer"], optimizer["parts"])]
        lr = fields["lr_state"]
        est._lr_state.epoch, est._lr_state._stalled, est._lr_state._adaptive = lr["epoch"], lr["stalled"], lr["adaptive"]

    def announce(self, est, completed, finished):
        """Say that this fit resumed (``verbose`` >= 1 prints it); returns the line, or None for a new fit.

        The line is also kept as ``est._resumed_note`` (the ``minicnn`` command prints it under ``--quiet``).
        """
        if self.resumed is None:
            return None
        path = os.fsdecode(os.fspath(self.path))
        total = self.start_iter + est.max_iter
        if finished:
            line = (f"Resumed from {path}: it holds the finished fit (epoch {est.n_iter_} of {total}); nothing left "
                    f"to train")
        else:
            line = f"Resumed from {path} at epoch {est.n_iter_} of {total}"
        est._resumed_note, est._resumed_at = line, est.n_iter_
        if est.verbose:
            print(line, flush=True)
        return line

    def loop_state(self, est):
        """``(best, no_improvement, completed, start, finished)`` of the resumed fit (a new one's start values)."""
        if self.resumed is None:
            return None, 0, 0, None, False
        model, found = self.resumed
        loop = found["fields"]["loop"]
        best = None
        if found["best"] is not None:
            arrays = est._snapshot()[0]
            best = (arrays, found["best"])
        return best, loop["no_improvement"], loop["completed"], loop["start"], loop["finished"]


def prepare(est, images, targets, weights, first, incremental):
    """The :class:`Checkpoint` of this call (None without ``checkpoint_path``); reads a matching file.

    Raises
    ------
    ValueError
        Naming ``checkpoint_path``: ``partial_fit`` with a checkpoint, a path
        that cannot be written (see :func:`check_path`), a checkpoint of other
        data or parameters, of a newer format, or an unreadable (truncated,
        corrupted) one.
    """
    est.__dict__.pop("_resumed_note", None)   # said by a previous fit's resume
    est.__dict__.pop("_resumed_at", None)
    path = est.checkpoint_path
    if path is None:
        return None
    if incremental:
        raise _fail(path, "partial_fit does not write or resume checkpoints (each call is one epoch that the "
                          "caller controls); use fit, or set checkpoint_path=None")
    check_path(path)
    ckpt = Checkpoint(path, fingerprint(est, images, targets, weights, None if first else _start_state(est)),
                      0 if first else est.n_iter_)
    if os.path.exists(path):
        model, found = ckpt._read(est)
        ckpt.resumed = (model, found)
        ckpt.seed = np.array(found["fields"]["seed"], dtype=np.uint64)
    return ckpt
