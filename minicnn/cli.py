"""The ``minicnn`` command: ``fit``, ``predict``, ``summary``, ``bench`` and ``study``.

Run ``minicnn COMMAND --help`` for the options of each command. Bad
arguments and bad files end with a one-line error on stderr and a non-zero
exit code (2 for bad arguments, 1 for errors while running, also for running
out of memory); ``--debug`` shows the full traceback instead. Output paths are
checked before any work starts.

``minicnn fit``'s estimator options, their types, choices and defaults come
from :mod:`minicnn.params`, the table ``CNNClassifier`` is built from: the
command and ``CNNClassifier()`` share one set of defaults.

Examples
--------
>>> from minicnn.cli import main
>>> main(["summary"])   # --model is required
2
"""

import argparse
import csv
import functools
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__, params, placement
from .architecture import TOKEN_DOCS

COMMANDS = ("fit", "predict", "evaluate", "summary", "export", "mc-report", "bench", "study")
#: Generated from the one table of layer kinds (``[...]`` optional; options named as on the command line).
LAYERS_GRAMMAR = ("comma-separated tokens, in order: " + "; ".join(TOKEN_DOCS).replace("kernel_size", "--kernel-size")
                  .replace("pool_size", "--pool-size") + "; the output layer is added. Example: "
                  "conv32,conv64,maxpool,dense128")


def _show(value):
    """A default as a user types it: tuples comma-separated, None as none."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (as typed on the command line)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or action.option_strings == []:
            return text
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        if action.required:
            return text + " (required)"
        if action.default is False and action.nargs == 0:
            return text + " (default: off)"
        return text + f" (default: {_show(action.default)})"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit code 2) and whose help shows defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- argument types


def _number(kind, low=None, high=None, low_open=False, what=None):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what or kind.__name__}, received {text!r}") from None
        if value != value:   # NaN
            raise argparse.ArgumentTypeError(f"expected {what}, received {text!r}")
        if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value >= high):
            raise argparse.ArgumentTypeError(f"expected {what}, received {text!r}")
        return value
    return parse


_POSITIVE_INT = _number(int, 1, what="an integer >= 1")
_FRACTION = _number(float, 0.0, 1.0, low_open=True, what="a number in (0, 1)")


def _layers(text):
    tokens = tuple(t.strip() for t in text.split(","))
    if not text.strip() or not all(tokens):
        raise argparse.ArgumentTypeError(f"expected {LAYERS_GRAMMAR} (no empty token); received {text!r}")
    from .architecture import parse_layers

    try:
        parse_layers(tokens)
    except ValueError as exc:   # the grammar's own words, about the option's value
        raise argparse.ArgumentTypeError(_cli_spelling(" ".join(str(exc).split()))) from None
    return tokens


def _dropout(text):
    parts = [p.strip() for p in text.split(",")]
    if all(p.lstrip("-").isdigit() for p in parts):
        return tuple(int(p) for p in parts)
    if len(parts) > 1:
        raise argparse.ArgumentTypeError(f"expected a policy (none, after_last_pool, after_each_layer, dense, "
                                         f"last:K) or comma-separated layer indices; received {text!r}")
    return text


def _rates(text):
    rates = []
    for part in (p.strip() for p in text.split(",")):
        try:
            rate = float(part)
        except ValueError:
            rate = part
        problem = params.invalid("dropout_rate", rate)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"expected {problem} (comma-separated), received {text!r}")
        rates.append(rate)
    return rates[0] if len(rates) == 1 else tuple(rates)


def _augment(text):
    tokens = () if text.strip().lower() in ("", "none") else tuple(t.strip() for t in text.split(","))
    problem = params.invalid("augment", tokens)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"expected {problem} (comma-separated, or none); received {text!r}")
    return tokens


def _class_weight(text):
    """``none``, ``balanced``, or ``CLASS:WEIGHT,...`` (classes that read as integers are integers)."""
    if text.strip().lower() in ("none", "balanced"):
        return None if text.strip().lower() == "none" else "balanced"
    weights = {}
    for part in text.split(","):
        key, sep, value = part.partition(":")
        try:
            key = int(key) if key.strip().lstrip("-").isdigit() else key.strip()
            weights[key] = float(value)
        except ValueError:
            sep = ""
        if not sep or key in ("", None):
            raise argparse.ArgumentTypeError(f"expected none, balanced or CLASS:WEIGHT pairs separated by commas "
                                             f"(e.g. 0:1,7:2.5); received {text!r}")
    problem = params.invalid("class_weight", weights)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"expected {problem}; received {text!r}")
    return weights


def _shape(text):
    if text.strip().lower() == "none":
        return None
    try:
        shape = tuple(int(p) for p in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive sizes in --data-format order "
                                         f"(e.g. 28,28,1) or none; received {text!r}")
    return shape


# --------------------------------------------------------------------------- data


def _split(X, y, test_size, seed):
    """``train_test_split`` of ``--data`` by ``--test-size``, stratified when every class has 2 images.

    A split that cannot keep every class on both sides is refused first by
    :func:`minicnn.holdout.check_holdout`, in the command's words (every command that splits: fit,
    evaluate, mc-report).
    """
    from sklearn.model_selection import train_test_split

    from .holdout import check_holdout

    stratify = check_holdout(y, test_size, parameter="--test-size", unit="images", other=", or pass --test-data")
    return train_test_split(X, y, test_size=test_size, stratify=y if stratify else None, random_state=seed)


def _load_npz(path, keys):
    import zipfile
    import zlib

    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError(f"{path}: a .npy array, not a .npz archive")
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise ValueError(f"{path}: expected arrays {list(keys)} in the .npz file, found {archive.files}")
            return tuple(archive[k] for k in keys)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None


DATASETS = ("digits", "mnist", "fashion-mnist")


def _data_files(spec):
    """The files a ``--data``/``--test-data`` value reads (none for the named data sets)."""
    if spec is None or spec in DATASETS:
        return []
    return spec[4:].split(",") if spec.startswith("idx:") else [spec]


def _load_labeled(spec, option, reading=None):
    """``(X, y)`` from ``idx:IMAGES,LABELS``, a ``.npz`` file with arrays ``X`` and ``y`` or ``folder:PATH``."""
    from . import datasets

    for path in _data_files(spec) if spec.startswith("idx:") or spec.endswith(".npz") else []:
        if not Path(path).exists():
            raise FileNotFoundError(f"{option} {spec}: no such file: {path}")
        if Path(path).is_dir():
            raise IsADirectoryError(f"{option} {spec}: {path} is a directory; expected a file")
    if spec.startswith("folder:"):
        from ._images_cli import read_labeled_folder

        X, y = read_labeled_folder(spec[7:], option, reading or {})
    elif spec.startswith("idx:"):
        paths = spec[4:].split(",")
        if len(paths) != 2 or not all(paths):
            raise ValueError(f"{option} idx:IMAGES,LABELS needs two comma-separated files; received {spec!r}")
        X, y = datasets.load_idx(*paths)
    elif spec.endswith(".npz"):
        X, y = _load_npz(spec, ("X", "y"))
    else:
        raise ValueError(f"{option}: expected {', '.join(DATASETS) if option == '--data' else ''}"
                         f"{', ' if option == '--data' else ''}idx:IMAGES,LABELS, a .npz file with arrays X "
                         f"and y or folder:PATH; received {spec!r}")
    if len(X) == 0:
        raise ValueError(f"{option} {spec}: holds no images")
    return X, y


def load_training_data(data, test_size, seed, test_data=None, reading=None):
    """Training and test arrays for ``minicnn fit --data DATA [--test-data TEST]``.

    Parameters
    ----------
    data : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` (these two with their
        standard test sets), ``"idx:IMAGES,LABELS"``, a ``.npz`` file with
        arrays ``X`` and ``y``, or ``"folder:PATH"`` (class subfolders of
        image files; labels are the folder names).
    test_size : float
        Held-out fraction of ``data`` (stratified when every class has two
        samples), when it has no standard test set and ``test_data`` is None.
    seed : int
    test_data : str, default=None
        ``"idx:IMAGES,LABELS"``, a ``.npz`` file (``X``, ``y``) or
        ``"folder:PATH"``: the test set, instead of a split of ``data`` or its
        standard test set.
    reading : dict, default=None
        Options of :func:`minicnn.datasets.load_image_folder` for ``folder:``
        data (``image_size``, ``color``, ...); a test folder is read as the
        training images were.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
    """
    from . import datasets

    standard = {"mnist": datasets.load_mnist, "fashion-mnist": datasets.load_fashion_mnist}
    if data in standard:
        X_train, y_train, X_test, y_test = standard[data]()
    elif test_data is not None:
        X_train, y_train = (datasets.load_digits_images() if data == "digits"
                            else _load_labeled(data, "--data", reading))
    else:
        X, y = datasets.load_digits_images() if data == "digits" else _load_labeled(data, "--data", reading)
        return _split(X, y, test_size, seed)
    if test_data is not None:
        from ._images_cli import reading_like

        X_test, y_test = _load_labeled(test_data, "--test-data", reading_like(X_train, reading))
    return X_train, X_test, y_train, y_test


def load_inputs(paths, model=None):
    """Images to predict and their ids, from a .npz (array ``X``), .npy, idx(.gz) file, or image files and folders.

    Image files (any format Pillow reads) and folders of them are read as
    ``model`` reads files (:func:`minicnn.preprocessing.model_input`: its
    recorded size, colour and resize policy, or its exact input size).

    Returns
    -------
    X : ndarray
    ids : list of str
        Row numbers, or the image paths as given (a folder's images as FOLDER/RELATIVE/PATH).

    Raises
    ------
    ValueError
        Naming the file, when it cannot be read or does not hold an array of
        at least 2 dimensions (images or rows of pixels).
    """
    from . import _images_cli as images

    paths = [str(p) for p in paths]
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"INPUT file not found: {path}")
    if images.are_image_inputs(paths):
        files = images.expand(paths)
        return images.read_for_model(model, files), files
    for path in paths:
        if Path(path).is_dir():
            raise IsADirectoryError(f"INPUT {path} is a directory of no images; expected image files and folders, "
                                    f"or one .npz, .npy or idx file")
    if len(paths) > 1:
        raise ValueError(f"several INPUT files are only allowed for image files and folders; received {paths}")
    path = paths[0]
    if path.endswith(".npz"):
        (X,) = _load_npz(path, ("X",))
    elif path.endswith(".npy"):
        try:
            X = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError)):
                raise
            raise ValueError(f"INPUT {path} is not a readable .npy array ({type(exc).__name__}: {exc})") from None
    else:
        from .datasets import load_idx_images

        X = load_idx_images(path)
    if not isinstance(X, np.ndarray) or X.ndim < 2:
        raise ValueError(f"INPUT {path} holds an array of shape {getattr(X, 'shape', None)}; expected images "
                         f"(n, height, width[, channels]) or rows of pixels (n, features)")
    return X, [str(i) for i in range(len(X))]


def _check_out(path, option, keep=()):
    """Refuse ``path`` as an output before any work: missing or unwritable directory, a directory, a
    read-only file, or one of the files ``keep`` (inputs the command reads) -- so no work is thrown away.
    A FIFO or a device (``/dev/stdout``) is accepted: the output is written into it, never replaces it."""
    from .files import same_file, writable_target

    if os.path.isdir(path):
        raise IsADirectoryError(f"{option} {path} is a directory; give a file name")
    for other_option, other in keep:
        if other and Path(other).exists() and same_file(path, other):
            raise ValueError(f"{option} {path} is the same file as {other_option} {other}: refusing to overwrite it")
    try:
        target, mode, _ = writable_target(path)   # follows links; PermissionError for read-only files
    except FileNotFoundError:
        target, mode = os.path.abspath(path), 0
    if mode is None:   # a FIFO or a device such as /dev/stdout: written in place, as open(path, "wb") would
        return
    directory = os.path.dirname(target) or "."
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{option} {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: directory {directory} is not writable")


# --------------------------------------------------------------------------- commands

#: Estimator parameters set by other options (--seed, --quiet, --checkpoint) or meaningless for one fit (warm_start).
_NOT_OPTIONS = ("random_state", "verbose", "warm_start", "checkpoint_path")
#: Parameter kinds the command can parse (a parameter of another kind keeps its default).
_CLI_KINDS = ("int", "float", "choice", "bool", "tokens", "dropout", "rates", "shape", "augment", "class_weight")


def _estimator_params():
    """The table's parameters that ``fit`` exposes as options."""
    return [p for p in params.PARAMS if p.name not in _NOT_OPTIONS and p.kind in _CLI_KINDS]


def classifier(args):
    """The ``CNNClassifier`` that ``minicnn fit`` trains for parsed arguments ``args``."""
    from .estimator import CNNClassifier

    return CNNClassifier(**{p.name: getattr(args, p.name) for p in _estimator_params()},
                         random_state=args.seed, verbose=0 if args.quiet else 1,
                         checkpoint_path=args.checkpoint)


def _fit(args):
    keep = [("--data", f) for f in _data_files(args.data)] + [("--test-data", f) for f in _data_files(args.test_data)]
    _check_out(args.out, "--out", keep)
    if args.checkpoint is not None:
        from .checkpoint import check_path

        check_path(args.checkpoint, others=[("--out", args.out), *keep])
    clf = classifier(args)
    placement.plan(clf)   # the layer grammar and dropout placement, before loading any data
    from ._images_cli import cli_reading

    X_train, X_test, y_train, y_test = load_training_data(args.data, args.test_size, args.seed, args.test_data,
                                                          cli_reading(args))
    if not args.quiet:
        print(f"Training on {len(X_train)} images from {args.data}, testing on {len(X_test)}"
              + (f" from {args.test_data}" if args.test_data else ""))
    from . import convergence

    start = time.perf_counter()
    with warnings.catch_warnings():
        if not args.quiet:   # --epochs states the stop, and the progress's stop line says whether it came early
            warnings.filterwarnings("ignore", message=f".*{convergence.MAX_ITER_WARNING} \\(max_iter=")
        clf.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    if args.quiet and getattr(clf, "_resumed_note", None):   # without --quiet the progress said it
        print(clf._resumed_note)
    accuracy = clf.score(X_test, y_test)
    from ._data_record import make_record   # what evaluate and mc-report score without being told again

    clf._data_record = make_record(args.data, args.test_data, args.test_size, args.seed)
    clf.save(args.out)
    from ._cli_report import check_model_file, wrote

    checked = check_model_file(args.out, clf, X_test[:64])
    print(f"test accuracy: {accuracy:.4f} ({len(X_test)} images)")
    epochs = f"{clf.n_iter_} epoch{'s' if clf.n_iter_ != 1 else ''}"
    resumed_at = getattr(clf, "_resumed_at", None)   # a resumed fit trained only the epochs after the checkpoint
    trained = epochs if resumed_at is None else (f"{clf.n_iter_ - resumed_at} epoch"
                                                 f"{'s' if clf.n_iter_ - resumed_at != 1 else ''} after resuming at "
                                                 f"epoch {resumed_at}; {epochs} in all")
    print(f"train time: {seconds:.2f} s ({trained})")
    print(wrote(args.out, f"CNNClassifier, {len(clf.classes_)} classes, {epochs}", checked,
                verb="saved model to"))
    if args.checkpoint is not None and os.path.exists(args.checkpoint):
        print(wrote(args.checkpoint, "checkpoint of the finished fit: the same command returns this model; delete "
                                     "it to train anew", "written after every epoch, read back by a resume"))
    return 0


def _load_model(path, predict_only=False):
    if Path(path).is_dir():
        raise IsADirectoryError(f"--model {path} is a directory; expected a model file written by 'minicnn fit'")
    if not Path(path).exists():   # a FIFO or device is refused by the loader, saying what it is
        raise FileNotFoundError(f"--model file not found: {path}")
    if predict_only:   # no scikit-learn import: ~1 s less per call
        from .predictor import load_predictor

        return load_predictor(path)
    from .estimator import load

    return load(path)


def _predict(args):
    if args.out:
        _check_out(args.out, "--out", [("--model", args.model)] + [("INPUT", p) for p in args.inputs])
    model = _load_model(args.model, predict_only=True)
    X, ids = load_inputs(args.inputs, model)
    if args.mc_samples is not None:
        header, columns = _mc_columns(model, X, args.mc_samples)
        columns.insert(0, ids)
        header.insert(0, "id")
    else:
        header = ["id", "prediction"]
        columns = [ids, model.predict(X).tolist()]
    if args.proba:
        if model.estimator != "CNNClassifier":
            raise ValueError(f"--proba needs a classifier; {args.model} holds a {model.estimator}")
        proba = model.predict_proba(X)
        header += [f"proba_{c}" for c in model.classes_]
        columns += [[f"{p:.6g}" for p in proba[:, j]] for j in range(proba.shape[1])]
    import io
    import locale

    from .files import write_text

    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*columns))
    if not args.out:
        sys.stdout.write(text.getvalue())
    else:   # atomically: a failed write leaves the previous CSV whole and no temporary file
        write_text(args.out, text.getvalue(), encoding=locale.getpreferredencoding(False), newline="")
        from ._cli_report import wrote

        with open(args.out, encoding=locale.getpreferredencoding(False), newline="") as written:
            rows = sum(1 for _ in csv.reader(written)) - 1
        if rows != len(ids):
            raise ValueError(f"--out {args.out}: read back {rows} rows, wrote {len(ids)}")
        print(wrote(args.out, f"CSV, {len(ids)} predictions, {len(header)} columns",
                    f"read back, {rows} rows"), file=sys.stderr)
    return 0


def _mc_columns(model, X, mc_samples):
    """``(header, columns)`` of ``predict --mc-samples``: the MC prediction, then mean and std columns."""
    mean, std = model.predict_uncertainty(X, mc_samples=mc_samples)
    if model.estimator == "CNNClassifier":
        names = [str(c) for c in model.classes_]
        header = ["prediction"] + [f"mean_{c}" for c in names] + [f"std_{c}" for c in names]
        columns = [model.classes_[mean.argmax(axis=1)].tolist()]
    else:
        mean, std = mean.reshape(len(X), -1), std.reshape(len(X), -1)
        suffix = [""] if mean.shape[1] == 1 else [f"_{j}" for j in range(mean.shape[1])]
        header = ["prediction" + s for s in suffix] + ["std" + s for s in suffix]
        columns = [[f"{v:.6g}" for v in mean[:, j]] for j in range(mean.shape[1])]
        return header, columns + [[f"{v:.6g}" for v in std[:, j]] for j in range(std.shape[1])]
    columns += [[f"{v:.6g}" for v in values[:, j]] for values in (mean, std) for j in range(values.shape[1])]
    return header, columns


def _recorded_data(args, model, command):
    """Fill ``--data``/``--test-size``/``--seed`` left out from the model's data record (``minicnn fit`` keeps
    the data it named). Recorded data that is not a built-in set is not read again unasked: an error names the
    option and the recorded value. Without a record: digits, 0.2 and 0, as ``minicnn fit``'s defaults."""
    from ._data_record import recorded_data

    record = recorded_data(model)
    if args.data is None and args.test_data is None and record is not None:
        if record["data"] not in DATASETS or record["test_data"] is not None:
            given = f"--data {record['data']}" + (f" --test-data {record['test_data']}" if record["test_data"] else "")
            where = "; ".join(f"{e['option']} {e['typed']}: {e['path']}" for e in record.get("files", [])
                              if e["typed"] != e["path"])
            raise ValueError(f"{command} needs --data: {args.model} was fitted with {given} (not a built-in data "
                             f"set, so it is not read again unasked{'; read as ' + where if where else ''}); to "
                             f"score the test split the fit held out, run: minicnn {command} --model {args.model} "
                             f"{given}")
        args.data = record["data"]
        args.test_size = record["test_size"] if args.test_size is None else args.test_size
        args.seed = record["seed"] if args.seed is None else args.seed
        args.recorded = True
    args.test_size = 0.2 if args.test_size is None else args.test_size
    args.seed = 0 if args.seed is None else args.seed


def _mc_report(args):
    from ._images_cli import model_reading
    from .uncertainty import format_report, mc_report

    model = _load_model(args.model, predict_only=True)
    if model.estimator != "CNNClassifier":
        raise ValueError(f"mc-report needs a classifier; {args.model} holds a {model.estimator}")
    _recorded_data(args, model, "mc-report")
    args.data = args.data or "digits"
    _, X_test, _, y_test = load_training_data(args.data, args.test_size, args.seed, args.test_data,
                                              model_reading(model))
    from ._data_record import warn_if_changed

    warn_if_changed(model, args.data, args.test_data)
    if args.limit is not None:
        X_test, y_test = X_test[:args.limit], y_test[:args.limit]
    _check_targets_fit(model, y_test, _scored_source(args.data, args), "mc-report")
    print(format_report(mc_report(model, X_test, y_test, mc_samples=args.mc_samples)))
    return 0


def _add_mc_report(sub, common):
    from .uncertainty import verdict_rule

    p = sub.add_parser("mc-report", parents=[common], help="deterministic vs Monte-Carlo dropout on held-out data",
                       description="Compare a saved classifier's deterministic predictions with the mean of K "
                                   "Monte-Carlo dropout passes on held-out data: log loss, Brier score, expected "
                                   "calibration error, accuracy, and the AUROC of the uncertainty separating wrong "
                                   "from right predictions (minicnn.uncertainty.mc_report). The held-out data are "
                                   "those 'minicnn fit' tests on for the same --data, --test-data, --test-size "
                                   "and --seed. For calibrated probabilities use scikit-learn's "
                                   "CalibratedClassifierCV(FrozenEstimator(model), method='temperature'). "
                                   f"The verdict's rule: {verdict_rule()}.")
    p.add_argument("--model", required=True, help="model file written by 'minicnn fit' or CNNClassifier.save")
    _add_data_options(p)
    p.add_argument("--seed", type=_number(int, 0, 2**32, what="an integer in [0, 2**32)"), default=0,
                   help="seed of the --test-size split, as given to 'minicnn fit' (default: the model's record "
                        "from 'minicnn fit', else 0; likewise --data and --test-size)")
    p.add_argument("--mc-samples", type=_POSITIVE_INT, default=30, metavar="K",
                   help="Monte-Carlo passes (default: 30)")
    p.add_argument("--limit", type=_POSITIVE_INT, default=None, metavar="N",
                   help="use the first N held-out samples only (default: all)")
    p.set_defaults(func=_mc_report, data=None, test_size=None, seed=None)   # left out: the model's data record


def _as_fit_held_it_out(model, data, args):
    """``", as 'minicnn fit' held it out"`` when the model's data record names this split; else ``""``, with a
    warning when the record names another one (the scored images may then include training images)."""
    from ._data_record import recorded_data

    record = recorded_data(model)
    if record is None or record["test_data"] is not None:
        return ""
    from ._data_record import same_path

    if same_path(record, "--data", data) and (record["test_size"], record["seed"]) == (args.test_size, args.seed):
        return ", as 'minicnn fit' held it out"
    warnings.warn(f"{args.model} was fitted by 'minicnn fit' with --data {record['data']} --test-size "
                  f"{record['test_size']} --seed {record['seed']}; this is another split (--data {data} --test-size "
                  f"{args.test_size} --seed {args.seed}), so its test images may include training images",
                  UserWarning, stacklevel=2)
    return ", not the split 'minicnn fit' held out"


def _scored_source(data, args, note=lambda: ""):
    """The held-out data a command scores, in words (``note()``: said inside the split's parentheses)."""
    if args.test_data:
        return args.test_data
    if data in ("mnist", "fashion-mnist"):
        return f"{data} (its test set)"
    return f"{data} (the --test-size {args.test_size} split of --seed {args.seed}{note()})"


def _check_targets_fit(model, y, source, command="evaluate"):
    """Refuse targets the model cannot be scored on, naming the data (not scikit-learn's metric wording)."""
    if type(model).__name__ == "CNNRegressor":
        width = 1 if np.ndim(y) == 1 else np.shape(y)[1]
        if width != model.n_outputs_:
            raise ValueError(f"{command} scored {source}, whose targets have {width} column(s); the model predicts "
                             f"{model.n_outputs_} (is it the model fitted on this data?)")
        return
    unknown = sorted(set(np.unique(y).tolist()) - set(model.classes_.tolist()), key=str)
    if unknown:
        raise ValueError(f"{command} scored {source}, whose labels {unknown[:10]} are not among the model's "
                         f"classes {model.classes_[:10].tolist()} (is it the model fitted on this data?)")


def _evaluate(args):
    """Score a saved model on held-out data: accuracy or R^2, plus scikit-learn's confusion matrix and report."""
    from sklearn.metrics import classification_report, confusion_matrix, r2_score

    from ._images_cli import model_reading

    model = _load_model(args.model)
    _recorded_data(args, model, "evaluate")
    if args.data is None and args.test_data is not None:
        X, y = _load_labeled(args.test_data, "--test-data", model_reading(model))
        source = args.test_data
    else:
        data = args.data or "digits"
        _, X, _, y = load_training_data(data, args.test_size, args.seed, args.test_data, model_reading(model))
        source = _scored_source(data, args, lambda: _as_fit_held_it_out(model, data, args))
        if getattr(args, "recorded", False):
            source += ", the data recorded in the model by 'minicnn fit'"
    from ._data_record import warn_if_changed

    warn_if_changed(model, args.data, args.test_data)
    try:
        predictions = model.predict(X)
    except ValueError as exc:   # e.g. digits given to a model of other images: say which data was scored
        raise ValueError(f"{exc} (evaluate scored {source}; pass the --data or --test-data the model was fitted "
                         f"on)") from None
    _check_targets_fit(model, y, source)
    print(f"evaluated {args.model} on {len(X)} samples from {source}")
    if type(model).__name__ == "CNNRegressor":
        print(f"R^2: {r2_score(y, predictions):.4f}")
        return 0
    labels = model.classes_
    print(f"accuracy: {np.mean(predictions == y):.4f}")
    print("confusion matrix (rows: true class, columns: predicted; classes " + ", ".join(map(str, labels)) + "):")
    print(confusion_matrix(y, predictions, labels=labels))
    print(classification_report(y, predictions, labels=labels, zero_division=0, digits=4))
    return 0


def _summary(args):
    print(_load_model(args.model).summary())
    return 0


def _bench(args):
    """Run :mod:`minicnn.tools.bench` with the arguments after ``bench``."""
    from .tools import bench

    argv = list(args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args)
    try:   # before any benchmark runs
        problem = _bench_problem(bench, argv)
    except SystemExit as exc:   # the runner's parser: its help (0) or its one-line error (2), said already
        return exc.code if isinstance(exc.code, int) else 2
    if problem is not None:
        print(f"minicnn bench: error: {problem} (see 'minicnn bench -- --help')", file=sys.stderr)
        return 2
    return _call_bench(bench.main, argv)


def _bench_problem(bench, argv):
    """What is wrong with the benchmark runner's arguments (naming the option and the value), or None; its own
    parser's errors exit 2 as they are. Checked before any benchmark runs, the --json file included."""
    args = bench._parse(argv)
    if args._child:
        return None
    lists = (("--models", args.models, tuple(bench.MODELS)), ("--backends", args.backends, bench.ENGINE_BACKENDS))
    for flag, value, allowed in lists:
        items = None if value is None else [v.strip() for v in value.split(",") if v.strip()]
        if items is not None and (not items or any(v not in allowed for v in items)):
            return f"argument {flag}: expected a comma list of {', '.join(allowed)}; received {value!r}"
    if args.threads is not None:
        items = [v.strip() for v in args.threads.split(",") if v.strip()]
        if not items or not all(v.isdigit() and int(v) >= 1 for v in items):
            return f"argument --threads: expected a comma list of thread counts >= 1; received {args.threads!r}"
    for flag, value in (("--rounds", args.rounds), ("--steps", args.steps)):
        if value is not None and value < 1:
            return f"argument {flag}: expected an integer >= 1; received {value!r}"
    if args.json is not None:
        _check_out(args.json, "--json")
    return None


def _call_bench(entry, argv):
    """Run a benchmark entry point; its ``SystemExit("message")`` becomes a one-line error."""
    try:
        return entry(argv) or 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            raise ValueError(exc.code.removeprefix("minicnn bench: ")) from None
        return exc.code or 0


# --------------------------------------------------------------------------- parser


def _param_option(parser, p, flags=None, **overrides):
    """An option for table parameter ``p``: type, choices, default and help all from :mod:`minicnn.params`."""
    flags = flags or ["--" + p.name.replace("_", "-")]
    kwargs = {"dest": p.name, "default": p.default, "help": p.doc}
    if p.kind in ("int", "float", "choice"):
        kwargs["type"] = params.cli_type(p.name)
        if p.kind == "choice":
            kwargs["choices"] = p.choices
        else:
            kwargs["metavar"] = p.kind.upper()
            kwargs["help"] += f"; {params.describe(p.name)}"
    elif p.kind == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = {"tokens": _layers, "dropout": _dropout, "rates": _rates, "shape": _shape,
                          "augment": _augment, "class_weight": _class_weight, "path": str}[p.kind]
        kwargs["metavar"] = {"tokens": "TOKENS", "dropout": "PLACEMENT", "rates": "RATE[,RATE...]",
                             "shape": "H,W,C", "augment": "TOKEN[,TOKEN...]",
                             "class_weight": "balanced|CLASS:WEIGHT,...", "path": "PATH"}[p.kind]
    kwargs.update(overrides)
    kwargs["help"] += f" (default: {_show(kwargs['default']) if p.kind != 'bool' else ('on' if p.default else 'off')})"
    parser.add_argument(*flags, **kwargs)


def _add_data_options(p):
    """``--data``, ``--test-data``, ``--test-size``: the data of ``fit`` and the held-out data of ``mc-report``."""
    data = p.add_argument_group("data")
    data.add_argument("--data", default="digits",
                      help="digits, mnist, fashion-mnist (these two with their standard test sets), "
                           "idx:IMAGES,LABELS (idx files, .gz or plain), a .npz file with arrays X and y, or "
                           "folder:PATH (a folder of class subfolders of image files)")
    data.add_argument("--test-data", default=None,
                      help="test set: idx:IMAGES,LABELS, a .npz file with arrays X and y or folder:PATH "
                           "(default: the standard test set, else a --test-size split of --data)")
    data.add_argument("--test-size", type=_FRACTION, default=0.2,
                      help="held-out fraction of --data when it has no standard test set and no --test-data")
    from ._images_cli import add_cli_options

    add_cli_options(data)


def _add_fit(sub, common):
    p = sub.add_parser("fit", parents=[common], help="train a CNNClassifier and save it",
                       description="Train a CNNClassifier, print its test accuracy and training time, save the "
                                   "model file. The estimator options and their defaults are CNNClassifier's "
                                   "(one table, minicnn.params): 'minicnn fit' with no options trains "
                                   "CNNClassifier(random_state=0, verbose=1) on the digits data.")
    _add_data_options(p)
    model = p.add_argument_group("estimator (CNNClassifier parameters)")
    for param in _estimator_params():
        if param.name == "layers":
            _param_option(model, param, help=LAYERS_GRAMMAR)
        elif param.name == "max_iter":
            _param_option(model, param, ["--epochs", "--max-iter"])
        else:
            _param_option(model, param)
    p.add_argument("--seed", type=_number(int, 0, 2**32, what="an integer in [0, 2**32)"), default=0,
                   help="random seed of the split and of the model, random_state (default: 0, so that runs "
                        "repeat; CNNClassifier's random_state default is None)")
    p.add_argument("--out", default="model.npz",
                   help="model file to write; its directory must exist and be writable (checked before training)")
    p.add_argument("--quiet", action="store_true",
                   help="no per-epoch progress (verbose=0; without it verbose=1)")
    p.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="checkpoint file written after every epoch (checkpoint_path); run the same command again "
                        "after a crash or kill to resume where it stopped, with the same final model")
    p.set_defaults(func=_fit)


def _add_predict(sub, common):
    from ._images_cli import ONE_ROW_PER_FILE

    p = sub.add_parser("predict", parents=[common], help="predict with a saved model, CSV output",
                       description="Predict with a saved model; writes CSV (id,prediction[,proba_<class>...]).")
    p.add_argument("--model", required=True, help="model file written by 'minicnn fit'")
    p.add_argument("inputs", metavar="INPUT", nargs="+",
                   help="image files and folders (any format Pillow reads: PNG, JPEG, BMP, GIF, WebP, TIFF; a "
                        "folder's files with an image extension, recursively, sorted), read with the model's "
                        "recorded size and colour, keyed by the path as given, "
                        f"{ONE_ROW_PER_FILE}; or one .npz (array X), .npy or idx(.gz) file")
    p.add_argument("--out", default=None,
                   help="CSV file, never the --model or an INPUT file (default: none, i.e. stdout)")
    p.add_argument("--proba", action="store_true", help="add one probability column per class")
    p.add_argument("--mc-samples", type=_POSITIVE_INT, default=None, metavar="K",
                   help="Monte-Carlo dropout with K passes: the prediction of the mean, and one mean_<class> and "
                        "std_<class> column per class (regressor: mean and std columns); see 'minicnn mc-report' "
                        "for whether it helps on your data")
    p.set_defaults(func=_predict)


def _add_evaluate(sub, common):
    p = sub.add_parser("evaluate", parents=[common], help="score a saved model on labelled data",
                       description="Score a saved model: accuracy, confusion matrix and classification report "
                                   "(scikit-learn's) for a classifier, R^2 for a regressor. --data, --test-data, "
                                   "--test-size and --seed mean what they mean for 'minicnn fit', so the same "
                                   "options score the test set that fit held out.")
    p.add_argument("--model", required=True, help="model file written by 'minicnn fit' or CNNClassifier.save")
    p.add_argument("--data", default=None,
                   help="as in 'minicnn fit' (default: the built-in data set the model file records from "
                        "'minicnn fit', else digits, unless only --test-data is given)")
    p.add_argument("--test-data", default=None, help="as in 'minicnn fit': the labelled data to score")
    p.add_argument("--test-size", type=_FRACTION, default=None,
                   help="as in 'minicnn fit' (default: as recorded by 'minicnn fit', else 0.2)")
    p.add_argument("--seed", type=_number(int, 0, 2**32, what="an integer in [0, 2**32)"), default=None,
                   help="as in 'minicnn fit': the seed of its split (default: as recorded, else 0)")
    p.set_defaults(func=_evaluate)


def _add_summary(sub, common):
    p = sub.add_parser("summary", parents=[common], help="print a saved model's layers and dropout placement",
                       description="Print a saved model's layers (output shapes, parameter counts), its dropout "
                                   "placement and its constructor parameters.")
    p.add_argument("--model", required=True, help="model file written by 'minicnn fit' or CNNClassifier.save")
    p.set_defaults(func=_summary)


def _add_bench(sub, common):
    p = sub.add_parser("bench", parents=[common], help="benchmarks (minicnn.tools.bench)",
                       description="Run the benchmarks: every argument after 'bench' goes unchanged to the "
                                   "benchmark runner (minicnn.tools.bench). "
                                   "'minicnn bench -- --help' lists its options and their defaults.")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="arguments for the benchmark runner (see 'minicnn bench -- --help')")
    p.set_defaults(func=_bench)


def _add_study(sub, common):
    from .tools.study import cli as study_cli

    p = sub.add_parser("study", parents=[common], help="the dropout-placement study (built-in or your data)",
                       description="Where should dropout go? Trains placements x rates x sizes x seeds, chooses "
                                   "rates on validation data, tests the claims, writes runs.csv and report.md.")
    study_cli.add_arguments(p, param_option=_param_option)
    p.set_defaults(func=study_cli.run)


def build_parser():
    """The ``minicnn`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors (default: off)")
    parser = _Parser(prog="minicnn", description="minicnn: a small, fast, CPU-only CNN engine.",
                     epilog="Run 'minicnn COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"minicnn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_fit(sub, common)
    _add_predict(sub, common)
    _add_evaluate(sub, common)
    _add_summary(sub, common)
    _add_mc_report(sub, common)
    from .onnx import _cli as onnx_cli   # imports no onnx until the command runs

    onnx_cli.add_parser(sub, common)
    _add_bench(sub, common)
    _add_study(sub, common)
    return parser


def commands_parser(parser, command):
    """The sub-parser of ``command``."""
    return parser._subparsers._group_actions[0].choices[command]


def _check_fit_options(args, fit_parser, argv=()):
    """Options that are valid one by one but not together (e.g. --dropout after_last_pool without a pooling
    layer in --layers): exit 2 with one line in the options' spelling, before any data is read."""
    clf = classifier(args)
    try:
        clf._validate_params()
        clf._plan()
    except ValueError as exc:
        from ._cli_words import typed_options

        words = _cli_spelling(" ".join(str(exc).split()), typed_options(fit_parser, argv))
        fit_parser.error(f"the options do not go together: {words}")


def _cli_spelling(text, options=None):
    """An estimator message in the command's spelling (:func:`minicnn._cli_words.cli_spelling`)."""
    from ._cli_words import cli_spelling

    return cli_spelling(text, options)


def _split_bench(argv):
    """Arguments after ``bench`` (passed through untouched), or None for other commands and ``bench --help``."""
    commands = [i for i, a in enumerate(argv) if not a.startswith("-")]
    if not commands or argv[commands[0]] != "bench":
        return None
    rest = argv[commands[0] + 1:]
    return None if rest in (["-h"], ["--help"]) else rest


def _one_line(exc):
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError):
        return f"out of memory: {text or 'an allocation failed'} (try smaller --layers, --batch-size or inputs)"
    plain = isinstance(exc, (ValueError, OSError)) and not isinstance(exc, KeyError)
    return text if text and plain else f"{type(exc).__name__}: {text}"


def _show_warning(command, message, category, filename, lineno, file=None, line=None, options=None):
    """``warnings.showwarning`` of the commands: ``minicnn COMMAND: warning: Category: message`` on one line,
    parameters named as the options typed (``options``: :func:`minicnn._cli_words.typed_options`)."""
    text = _cli_spelling(" ".join(str(message).split()), options)
    print(f"minicnn {command}: warning: {category.__name__}: {text}", file=sys.stderr if file is None else file)


def main(argv=None):
    """Entry point of the ``minicnn`` console script and of ``python -m minicnn``.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name (None: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 on success, 1 on an error while running, 2 on bad arguments.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    bench_args = _split_bench(argv)
    try:
        args, extra = parser.parse_known_args(argv if bench_args is None else argv[:len(argv) - len(bench_args)])
        if extra:   # said by the command that was given: "minicnn fit: error: ... (see 'minicnn fit --help')"
            commands = parser._subparsers._group_actions[0].choices
            (commands.get(args.command) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "fit":
            _check_fit_options(args, commands_parser(parser, "fit"), argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if bench_args is not None:
        args.bench_args = bench_args
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(f"minicnn: error: choose a command: {', '.join(COMMANDS)} (see 'minicnn --help')", file=sys.stderr)
        return 2
    args.argv = argv
    from ._cli_words import typed_options

    options = typed_options(commands_parser(parser, args.command), argv)   # errors name the options as typed
    try:
        with warnings.catch_warnings():
            if not args.debug:   # one line per warning, like the errors (the Python form with --debug)
                warnings.showwarning = functools.partial(_show_warning, args.command, options=options)
            return args.func(args)
    except Exception as exc:   # anything, out of memory included: one line (the traceback with --debug)
        if args.debug:
            raise
        from ._cli_words import name_the_option

        text = name_the_option(_cli_spelling(_one_line(exc), options), exc, argv, options)
        print(f"minicnn {args.command}: error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"minicnn {args.command}: interrupted", file=sys.stderr)
        return 130
